//! The BERT pre-tokenizer: split the normalized text on whitespace (removed)
//! and on punctuation (each punctuation char is a word of its own).
//!
//! Mirrors HF tokenizers `pre_tokenizers/bert.rs`. It is a [`Sink`] of the
//! normalizer: words are built as normalized chars arrive, each byte of a word
//! tagged with the index of the original char it comes from, and handed to
//! `on_word` as soon as they end. No allocation per word: the buffers are reused.

use super::normalize::{is_punctuation, is_whitespace, Sink};

/// Buffers reused across words (and texts).
#[derive(Debug, Default)]
pub struct WordBuffer {
    /// The normalized word.
    pub word: String,
    /// For each byte of `word`, the index of the original char it comes from.
    pub origins: Vec<u32>,
}

impl WordBuffer {
    fn push(&mut self, c: char, origin: u32) {
        self.word.push(c);
        for _ in 0..c.len_utf8() {
            self.origins.push(origin);
        }
    }

    fn clear(&mut self) {
        self.word.clear();
        self.origins.clear();
    }
}

/// Splits a stream of normalized chars into words.
pub struct WordSplitter<'a, F: FnMut(&str, &[u32])> {
    buffer: &'a mut WordBuffer,
    on_word: F,
}

impl<'a, F: FnMut(&str, &[u32])> WordSplitter<'a, F> {
    pub fn new(buffer: &'a mut WordBuffer, on_word: F) -> Self {
        buffer.clear();
        WordSplitter { buffer, on_word }
    }

    /// Hand over the word being built, if any.
    pub fn end_word(&mut self) {
        if !self.buffer.word.is_empty() {
            (self.on_word)(&self.buffer.word, &self.buffer.origins);
            self.buffer.clear();
        }
    }

    /// End of the text: hand over the last word.
    pub fn finish(mut self) {
        self.end_word();
    }
}

impl<F: FnMut(&str, &[u32])> Sink for WordSplitter<'_, F> {
    #[inline]
    fn push(&mut self, c: char, origin: u32) {
        if c.is_ascii_alphanumeric() {
            self.buffer.push(c, origin);
        } else if is_whitespace(c) {
            self.end_word();
        } else if is_punctuation(c) {
            self.end_word();
            self.buffer.push(c, origin);
            self.end_word();
        } else {
            self.buffer.push(c, origin);
        }
    }
}

/// Split a normalized text into (word, first origin, last origin) (for tests).
pub fn split_words(text: &str) -> Vec<(String, u32, u32)> {
    let mut buffer = WordBuffer::default();
    let mut words = Vec::new();
    let mut splitter = WordSplitter::new(&mut buffer, |word: &str, origins: &[u32]| {
        let first = origins.first().copied().unwrap_or(0);
        let last = origins.last().copied().unwrap_or(0);
        words.push((word.to_string(), first, last));
    });
    for (index, c) in (0u32..).zip(text.chars()) {
        splitter.push(c, index);
    }
    splitter.finish();
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_whitespace_and_punctuation() {
        let words = split_words("Hey friend!     How are you?!?");
        let expected = [
            ("Hey", 0, 2),
            ("friend", 4, 9),
            ("!", 10, 10),
            ("How", 16, 18),
            ("are", 20, 22),
            ("you", 24, 26),
            ("?", 27, 27),
            ("!", 28, 28),
            ("?", 29, 29),
        ];
        let expected: Vec<(String, u32, u32)> = expected
            .iter()
            .map(|&(word, first, last)| (word.to_string(), first, last))
            .collect();
        assert_eq!(words, expected);
    }

    #[test]
    fn unicode_punctuation_and_symbols() {
        // '¿' and '「' are punctuation (P*); '€' is a symbol (Sc) and stays in the word.
        let words: Vec<String> = split_words("¿qué「x」5€")
            .into_iter()
            .map(|(word, _, _)| word)
            .collect();
        assert_eq!(words, ["¿", "qué", "「", "x", "」", "5€"]);
    }

    #[test]
    fn multibyte_origins_per_byte() {
        let mut buffer = WordBuffer::default();
        let mut seen = Vec::new();
        let mut splitter = WordSplitter::new(&mut buffer, |word: &str, origins: &[u32]| {
            seen.push((word.len(), origins.to_vec()));
        });
        splitter.push('é', 3);
        splitter.push('a', 4);
        splitter.finish();
        assert_eq!(seen, vec![(3, vec![3, 3, 4])]);
    }

    #[test]
    fn empty_and_blank() {
        assert!(split_words("").is_empty());
        assert!(split_words("  \n\t ").is_empty());
    }
}
