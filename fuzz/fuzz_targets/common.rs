//! Shared by the fuzz targets: small WordPiece tokenizers described as HF
//! tokenizer.json documents (so the loader is exercised too), and checks of
//! the invariants every encoding must satisfy.

use _core::tokenizer::files::from_tokenizer_json;
use _core::tokenizer::{Encoding, Tokenizer};
use serde_json::{json, Value};

/// Words of the test vocabulary: whole words, continuation pieces, letters
/// (so most words have a WordPiece split), accents, CJK, Korean, emoji.
const WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "he", "##llo", "wor", "##ld",
    "un", "##aff", "##able", "##s", "##ing", "cafe", "café", "Café", "naïve", "ß", "ss", "İ", "i",
    "##̇", "中", "国", "##国", "한", "##국", "😀", "##😀", "'", "!", ".", ",", "-", "##-", "$", "1",
    "##2", "##3", "12", "a", "b", "c", "d", "e", "##a", "##b", "##c", "##e", "abc", "x", "Hello",
    "HELLO", "ﬁ", "fi", "Ω", "ω", "σ", "ς", "##ς", "\u{2028}", "ab", "é", "e\u{301}",
];

/// A tokenizer.json document. `variant` picks the vocabulary prefix, the
/// added tokens and the post-processor; `normalizer` is
/// (clean_text, handle_chinese_chars, strip_accents, lowercase).
pub fn tokenizer_json(variant: u8, normalizer: (bool, bool, Option<bool>, bool)) -> Value {
    let prefix = if variant == 1 { "@@" } else { "##" };
    let vocab: serde_json::Map<String, Value> = WORDS
        .iter()
        .enumerate()
        .map(|(id, word)| (word.replace("##", prefix), json!(id)))
        .collect();
    let added_special = |content: &str, id: usize| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let mut added: Vec<Value> = (0..5).map(|id| added_special(WORDS[id], id)).collect();
    if variant == 1 {
        let n = WORDS.len();
        added[4] = json!({"id": 4, "content": "[MASK]", "single_word": false, "lstrip": true,
                          "rstrip": false, "normalized": false, "special": true});
        added.push(
            json!({"id": n, "content": "<s w>", "single_word": true, "lstrip": false,
                          "rstrip": true, "normalized": false, "special": false}),
        );
        added.push(
            json!({"id": n + 1, "content": "ab", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": false}),
        );
        added.push(
            json!({"id": n + 2, "content": "abc", "single_word": true, "lstrip": true,
                          "rstrip": true, "normalized": false, "special": true}),
        );
        added.push(
            json!({"id": n + 3, "content": "é", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": false}),
        );
    }
    let post_processor = match variant {
        0 => json!({"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}),
        1 => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3, 3], "tokens": ["[SEP]", "[SEP]"]}},
        }),
        _ => Value::Null,
    };
    let (clean_text, handle_chinese_chars, strip_accents, lowercase) = normalizer;
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": clean_text,
                       "handle_chinese_chars": handle_chinese_chars,
                       "strip_accents": strip_accents, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": post_processor,
        "decoder": {"type": "WordPiece", "prefix": prefix, "cleanup": variant != 2},
        "model": {"type": "WordPiece", "unk_token": "[UNK]",
                  "continuing_subword_prefix": prefix,
                  "max_input_chars_per_word": if variant == 2 { 8 } else { 100 },
                  "vocab": vocab},
    })
}

/// Every (variant, normalizer) combination, built once.
pub fn tokenizers() -> &'static [Tokenizer] {
    static TOKENIZERS: std::sync::OnceLock<Vec<Tokenizer>> = std::sync::OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        let mut all = Vec::new();
        for variant in 0..3 {
            for bits in 0..24u8 {
                let strip = [None, Some(false), Some(true)][usize::from(bits / 8)];
                let options = (bits & 1 != 0, bits & 2 != 0, strip, bits & 4 != 0);
                let text = tokenizer_json(variant, options).to_string();
                match from_tokenizer_json(&text, "fuzz") {
                    Ok(tokenizer) => all.push(tokenizer),
                    Err(err) => panic!("the fuzz tokenizer does not load: {err}"),
                }
            }
        }
        all
    })
}

/// Number of chars of `text`, as offsets count them.
pub fn char_len(text: &str) -> u32 {
    u32::try_from(text.chars().count()).unwrap_or(u32::MAX)
}

/// Structural invariants of one encoding of `texts` (first, second).
pub fn check_encoding(encoding: &Encoding, texts: (&str, Option<&str>), vocab_size: usize) {
    let ids = encoding.ids();
    let offsets = encoding.offsets();
    let sequence_ids = encoding.sequence_ids();
    let n = ids.len();
    assert_eq!(encoding.len(), n);
    assert_eq!(encoding.type_ids().len(), n);
    assert_eq!(offsets.len(), n);
    assert_eq!(encoding.special_tokens_mask().len(), n);
    assert_eq!(encoding.attention_mask().len(), n);
    assert_eq!(sequence_ids.len(), n);
    for index in 0..n {
        let id = ids[index] as usize;
        assert!(id < vocab_size, "id {id} out of the vocabulary");
        let (start, end) = offsets[index];
        assert!(start <= end, "offsets {start}..{end}");
        match sequence_ids[index] {
            Some(0) => assert!(end <= char_len(texts.0), "offset {end} past the text"),
            Some(1) => {
                let pair = texts.1.unwrap_or("");
                assert!(end <= char_len(pair), "offset {end} past the pair");
            }
            Some(other) => panic!("sequence id {other}"),
            None => {}
        }
    }
}
