//! The tokenizer pipeline on arbitrary text: added-token split, normalizer,
//! pre-tokenizer, WordPiece, truncation, template, padding, decode.
//!
//! Input layout: 4 option bytes, then the text (invalid UTF-8 replaced by
//! U+FFFD, as Python's `errors="replace"` would). Byte 0: tokenizer variant
//! and normalizer; byte 1: add_special_tokens, pair, truncation strategy;
//! byte 2: max_length (0 = no truncation); byte 3: padding, and where the
//! text is cut into the pair.

#![no_main]

mod common;

use _core::tokenizer::{
    Encoding, Padding, PaddingLength, Truncation, TruncationStrategy, Workspace,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((options, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let tokenizers = common::tokenizers();
    let tokenizer = &tokenizers[usize::from(options[0]) % tokenizers.len()];
    let vocab_size = tokenizer.vocab_size();
    let add_special = options[1] & 1 != 0;
    let (first, second) = if options[1] & 2 != 0 {
        // Cut at a char boundary chosen by byte 3.
        let chars = text.chars().count();
        let cut = if chars == 0 {
            0
        } else {
            usize::from(options[3]) % (chars + 1)
        };
        let at = text
            .char_indices()
            .nth(cut)
            .map_or(text.len(), |(at, _)| at);
        (&text[..at], Some(&text[at..]))
    } else {
        (&text[..], None)
    };
    let strategy = match (options[1] >> 2) % 3 {
        0 => TruncationStrategy::LongestFirst,
        1 => TruncationStrategy::OnlyFirst,
        _ => TruncationStrategy::OnlySecond,
    };
    let truncation = options[2].checked_sub(1).map(|max_length| Truncation {
        max_length: usize::from(max_length),
        strategy,
    });

    let encoding = tokenizer.encode((first, second), add_special, truncation);
    let encoding = match encoding {
        Ok(encoding) => encoding,
        // Only truncation can refuse an input (max_length too small for the
        // special tokens, or the sequence to cut too short).
        Err(err) => {
            assert!(truncation.is_some(), "error without truncation: {err}");
            assert!(matches!(err, _core::Error::Tokenizer(_)), "{err:?}");
            return;
        }
    };
    common::check_encoding(&encoding, (first, second), vocab_size);
    if let Some(truncation) = truncation {
        assert!(
            encoding.len() <= truncation.max_length,
            "{} tokens for max_length {}",
            encoding.len(),
            truncation.max_length
        );
    }

    // The tokens without template are the sequence tokens of the encoding.
    let mut workspace = Workspace::default();
    let mut tokens = Vec::new();
    tokenizer.tokenize_into(first, &mut workspace, &mut tokens);
    if truncation.is_none() {
        let from_first: Vec<u32> = encoding
            .ids()
            .into_iter()
            .zip(encoding.sequence_ids())
            .filter(|(_, seq)| *seq == Some(0))
            .map(|(id, _)| id)
            .collect();
        let ids: Vec<u32> = tokens.iter().map(|token| token.id).collect();
        assert_eq!(from_first, ids);
    }

    // A batch gives what single calls give, then padded.
    let padding = match options[3] & 3 {
        0 => None,
        1 => Some(PaddingLength::Longest),
        _ => Some(PaddingLength::Fixed(usize::from(options[3] >> 2))),
    }
    .map(|length| Padding {
        length,
        pad_to_multiple_of: (options[3] & 0x80 != 0).then_some(usize::from(options[2] % 9)),
        pad_id: 0,
        pad_type_id: u32::from(options[3] & 1),
    });
    let inputs = [
        (first, second),
        ("hello", None),
        (second.unwrap_or(""), Some(first)),
    ];
    if let Ok(batch) = tokenizer.encode_batch(&inputs, add_special, truncation, padding) {
        assert_eq!(batch.len(), inputs.len());
        for (input, padded) in inputs.iter().zip(&batch) {
            let mut single = tokenizer
                .encode(*input, add_special, truncation)
                .unwrap_or_else(|err| panic!("batch ok, single failed: {err}"));
            assert!(padded.len() >= single.len());
            if padding.is_some() {
                single.pad(padded.len(), 0, u32::from(options[3] & 1));
            }
            assert_eq!(&single, padded);
        }
        if let Some(Padding {
            length: PaddingLength::Longest,
            pad_to_multiple_of: None,
            ..
        }) = padding
        {
            let longest = batch.iter().map(Encoding::len).max().unwrap_or(0);
            assert!(batch.iter().all(|encoding| encoding.len() == longest));
        }
    }

    let _ = tokenizer.decode(&encoding.ids(), options[1] & 0x80 != 0);
});
