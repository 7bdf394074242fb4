//! Tests of the whole pipeline (`Tokenizer`): special tokens, batches,
//! truncation with the template.
#![allow(clippy::unwrap_used)]

use super::*;

fn tokenizer(lowercase: bool) -> Tokenizer {
    let text = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\nworld\n!\nhe\n##llo\nwor\n##ld\ncafe\nCafé\n";
    let vocab = Vocab::from_vocab_txt(text, "##", "test").unwrap();
    files::bert_from_vocab(
        vocab,
        NormalizerOptions {
            lowercase,
            ..NormalizerOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn encode_single_with_specials() {
    let tokenizer = tokenizer(true);
    let encoding = tokenizer
        .encode(("Hello worlds!", None), true, None)
        .unwrap();
    assert_eq!(encoding.ids(), [2, 5, 7, 6, 8, 3]);
    assert_eq!(
        encoding.offsets(),
        [(0, 0), (0, 5), (6, 11), (11, 12), (12, 13), (0, 0)]
    );
}

#[test]
fn special_tokens_in_text() {
    let tokenizer = tokenizer(true);
    let encoding = tokenizer.encode(("é[MASK]x", None), false, None).unwrap();
    assert_eq!(encoding.ids(), [1, 4, 1]);
    assert_eq!(encoding.offsets(), [(0, 1), (1, 7), (7, 8)]);
}

#[test]
fn cased_and_uncased() {
    assert_eq!(
        tokenizer(true)
            .encode(("Café", None), false, None)
            .unwrap()
            .ids(),
        [13]
    );
    assert_eq!(
        tokenizer(false)
            .encode(("Café", None), false, None)
            .unwrap()
            .ids(),
        [14]
    );
}

#[test]
fn batch_equals_single_and_pads() {
    let tokenizer = tokenizer(true);
    let texts: Vec<String> = (0..40).map(|i| "hello ".repeat(i % 7)).collect();
    let inputs: Vec<Input<'_>> = texts
        .iter()
        .map(|text| (text.as_str(), Some("world")))
        .collect();
    let padding = Padding {
        length: PaddingLength::Longest,
        pad_to_multiple_of: None,
        pad_id: 0,
        pad_type_id: 0,
    };
    let batch = tokenizer
        .encode_batch(&inputs, true, None, Some(padding))
        .unwrap();
    let longest = batch.iter().map(Encoding::len).max().unwrap();
    for (input, encoding) in inputs.iter().zip(&batch) {
        let mut single = tokenizer.encode(*input, true, None).unwrap();
        single.pad(longest, 0, 0);
        assert_eq!(&single, encoding);
    }
}

#[test]
fn truncation_counts_specials() {
    let tokenizer = tokenizer(true);
    let truncation = Truncation {
        max_length: 4,
        strategy: TruncationStrategy::LongestFirst,
    };
    let encoding = tokenizer
        .encode(("hello hello hello", None), true, Some(truncation))
        .unwrap();
    assert_eq!(encoding.ids(), [2, 5, 5, 3]);
    let too_small = Truncation {
        max_length: 1,
        ..truncation
    };
    assert!(tokenizer
        .encode(("hello", None), true, Some(too_small))
        .is_err());
}
