//! Tokenizer files from arbitrary bytes: `tokenizer.json` (byte 0 even) or
//! `vocab.txt` (byte 0 odd). Loading gives an error or a tokenizer; a loaded
//! tokenizer encodes text, and what `to_tokenizer_json` writes loads back to
//! a tokenizer that encodes the same.

#![no_main]

#[allow(dead_code)]
mod common;

use _core::tokenizer::files::{bert_from_vocab, from_tokenizer_json};
use _core::tokenizer::tokenizer_json::to_tokenizer_json;
use _core::tokenizer::{NormalizerOptions, Tokenizer, Vocab};
use libfuzzer_sys::fuzz_target;

const TEXTS: &[(&str, Option<&str>)] = &[
    ("Hello, world! [MASK] unaffable café", None),
    ("中国 한국 😀 naïve", Some("hello [SEP] x")),
    ("", None),
    ("ab abc <s w> ##s @@a", Some("")),
];

fn exercise(tokenizer: &Tokenizer, extra: &str) {
    let vocab_size = tokenizer.vocab_size();
    let extra = extra.get(..extra.len().min(256)).unwrap_or("");
    let texts = TEXTS
        .iter()
        .copied()
        .chain([(extra, None), (extra, Some(extra))]);
    for (text, pair) in texts {
        match tokenizer.encode((text, pair), true, None) {
            Ok(encoding) => {
                common::check_encoding(&encoding, (text, pair), vocab_size);
                let _ = tokenizer.decode(&encoding.ids(), true);
                let _ = tokenizer.decode(&encoding.ids(), false);
            }
            Err(err) => panic!("encode without truncation failed: {err}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let loaded = if kind & 1 == 0 {
        from_tokenizer_json(&text, "tokenizer.json")
    } else {
        Vocab::from_vocab_txt(&text, "##", "vocab.txt").and_then(|vocab| {
            let options = NormalizerOptions {
                lowercase: kind & 2 != 0,
                ..NormalizerOptions::default()
            };
            bert_from_vocab(vocab, options)
        })
    };
    let tokenizer = match loaded {
        Ok(tokenizer) => tokenizer,
        Err(err) => {
            assert!(matches!(err, _core::Error::Tokenizer(_)), "{err:?}");
            let message = err.to_string();
            assert!(
                ["tokenizer.json", "vocab.txt", "vocabulary"]
                    .iter()
                    .any(|origin| message.starts_with(origin)),
                "error does not name the file: {message}"
            );
            return;
        }
    };
    exercise(&tokenizer, &text);
    let saved = to_tokenizer_json(&tokenizer).to_string();
    let reloaded = from_tokenizer_json(&saved, "saved")
        .unwrap_or_else(|err| panic!("saved tokenizer.json refused: {err}"));
    for (text, pair) in TEXTS {
        let before = tokenizer.encode((text, *pair), true, None).ok();
        let after = reloaded.encode((text, *pair), true, None).ok();
        assert_eq!(before, after, "round trip changed the encoding of {text:?}");
    }
});
