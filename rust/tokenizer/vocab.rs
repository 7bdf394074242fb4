//! The WordPiece vocabulary: token <-> id, with the continuation pieces
//! (`##xyz`) also indexed without their prefix so lookups need no allocation.

use rustc_hash::FxHashMap;

use super::trie::Trie;

use crate::error::{Error, Result};

/// A WordPiece vocabulary.
#[derive(Clone, Debug, Default)]
pub struct Vocab {
    /// id -> token; `None` for ids no token maps to (a duplicated line in
    /// vocab.txt: as in HF, the later line wins the token).
    tokens: Vec<Option<Box<str>>>,
    /// token -> id, every token.
    ids: FxHashMap<Box<str>, u32>,
    /// piece -> id for the tokens `prefix + piece`.
    continuations: FxHashMap<Box<str>, u32>,
    /// The continuing-subword prefix ("##").
    prefix: String,
    /// Longest token, in bytes (no match can be longer).
    longest: usize,
    /// Longest continuation piece, in bytes, prefix excluded.
    longest_continuation: usize,
    /// Tries for the longest-match search: all tokens, continuation pieces.
    start_trie: Trie,
    continuation_trie: Trie,
}

impl Vocab {
    /// Build from (token, id) pairs; a later pair wins a repeated token, two
    /// tokens with one id are an error.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, u32)>,
        prefix: &str,
        origin: &str,
    ) -> Result<Self> {
        let mut ids: FxHashMap<Box<str>, u32> = FxHashMap::default();
        for (token, id) in pairs {
            if id == u32::MAX {
                return Err(Error::Tokenizer(format!(
                    "{origin}: token id {id} is too large"
                )));
            }
            ids.insert(token.into_boxed_str(), id);
        }
        let size = ids.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        if size > 50_000_000 {
            return Err(Error::Tokenizer(format!(
                "{origin}: token ids up to {size} for {} tokens; is this a vocabulary?",
                ids.len()
            )));
        }
        let mut tokens: Vec<Option<Box<str>>> = vec![None; size];
        let mut continuations = FxHashMap::default();
        let mut longest = 0;
        let mut longest_continuation = 0;
        for (token, &id) in &ids {
            if let Some(slot) = tokens.get_mut(id as usize) {
                // Two tokens for one id (one embedding row) is a broken file;
                // it could not be saved either (HF keeps one of them).
                if let Some(other) = slot.as_deref() {
                    let (first, second) = if other < &**token {
                        (other, &**token)
                    } else {
                        (&**token, other)
                    };
                    return Err(Error::Tokenizer(format!(
                        "{origin}: the tokens {first:?} and {second:?} have the same id {id}"
                    )));
                }
                *slot = Some(token.clone());
            }
            longest = longest.max(token.len());
            if !prefix.is_empty() {
                if let Some(piece) = token.strip_prefix(prefix) {
                    continuations.insert(Box::from(piece), id);
                    longest_continuation = longest_continuation.max(piece.len());
                }
            }
        }
        if prefix.is_empty() {
            // HF looks continuations up as `"" + piece`: the whole vocabulary.
            continuations = ids.clone();
            longest_continuation = longest;
        }
        let start_trie = Trie::new(ids.iter().map(|(token, &id)| (&**token, id)));
        let continuation_trie = Trie::new(continuations.iter().map(|(piece, &id)| (&**piece, id)));
        Ok(Vocab {
            start_trie,
            continuation_trie,
            tokens,
            ids,
            continuations,
            prefix: prefix.to_string(),
            longest,
            longest_continuation,
        })
    }

    /// Parse a vocab.txt: one token a line, id = line number. As HF
    /// (`WordPiece::read_file`): lines end at "\n" (a "\r" before it is
    /// dropped) and trailing whitespace is trimmed, so "x\u{2028}" is "x".
    pub fn from_vocab_txt(text: &str, prefix: &str, origin: &str) -> Result<Self> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<&str> = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n').collect()
        };
        if lines.is_empty() {
            return Err(Error::Tokenizer(format!(
                "{origin}: the vocabulary is empty"
            )));
        }
        let tokens = lines.into_iter().map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            line.trim_end()
        });
        // HF lets a repeated line win silently, leaving an id with no token;
        // a vocabulary lists each token once, so a repeat means a broken file.
        let mut first_line: FxHashMap<&str, u32> = FxHashMap::default();
        let mut pairs = Vec::new();
        for (id, token) in (0u32..).zip(tokens) {
            if let Some(first) = first_line.insert(token, id) {
                return Err(Error::Tokenizer(format!(
                    "{origin}: the token {token:?} appears twice, on lines {} and {}",
                    u64::from(first) + 1,
                    u64::from(id) + 1
                )));
            }
            pairs.push((token.to_string(), id));
        }
        Self::from_pairs(pairs, prefix, origin)
    }

    /// Id of a whole token.
    #[inline]
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Id of `prefix + piece`.
    #[inline]
    pub fn continuation_id(&self, piece: &str) -> Option<u32> {
        self.continuations.get(piece).copied()
    }

    /// Longest token `bytes` starts with: (id, length in bytes).
    #[inline]
    pub fn longest_match(&self, bytes: &[u8]) -> Option<(u32, usize)> {
        self.start_trie.longest_prefix(bytes)
    }

    /// Longest continuation piece `bytes` starts with: (id, length in bytes).
    #[inline]
    pub fn longest_continuation_match(&self, bytes: &[u8]) -> Option<(u32, usize)> {
        self.continuation_trie.longest_prefix(bytes)
    }

    /// Token of an id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens
            .get(id as usize)
            .and_then(|token| token.as_deref())
    }

    /// One more than the largest id.
    pub fn size(&self) -> usize {
        self.tokens.len()
    }

    /// Number of distinct tokens (HF's `get_vocab_size` of the model).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn longest(&self) -> usize {
        self.longest
    }

    pub fn longest_continuation(&self) -> usize {
        self.longest_continuation
    }

    /// (token, id) pairs sorted by id.
    pub fn pairs(&self) -> Vec<(&str, u32)> {
        (0u32..)
            .zip(&self.tokens)
            .filter_map(|(id, token)| token.as_deref().map(|token| (token, id)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vocab_txt_lines() {
        let vocab =
            Vocab::from_vocab_txt("[PAD]\na\r\n##b\nx\u{2028}y\nz\u{2028}\n", "##", "t").unwrap();
        assert_eq!(vocab.id("[PAD]"), Some(0));
        assert_eq!(vocab.id("a"), Some(1));
        assert_eq!(vocab.continuation_id("b"), Some(2));
        assert_eq!(vocab.id("x\u{2028}y"), Some(3));
        assert_eq!(vocab.id("z"), Some(4));
        assert_eq!(vocab.size(), 5);
        assert_eq!(vocab.token(2), Some("##b"));
        assert_eq!(vocab.longest(), "x\u{2028}y".len());
    }

    #[test]
    fn shared_ids_are_an_error() {
        let pairs = [("un".to_string(), 8), ("##aff".to_string(), 8)];
        let err = Vocab::from_pairs(pairs, "##", "tokenizer.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tokenizer.json: the tokens \"##aff\" and \"un\" have the same id 8"
        );
    }

    #[test]
    fn duplicates_are_an_error() {
        let err = Vocab::from_vocab_txt("a\nb\na \n", "##", "v.txt").unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("v.txt: "), "{message}");
        assert!(
            message.contains("\"a\" appears twice, on lines 1 and 3"),
            "{message}"
        );
    }

    #[test]
    fn empty_vocab_is_an_error() {
        let err = Vocab::from_vocab_txt("", "##", "vocab.txt").unwrap_err();
        assert!(err.to_string().contains("vocab.txt"));
    }
}
