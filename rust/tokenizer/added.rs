//! Added (special) tokens written inside the text: `[CLS]`, `[SEP]`, `[MASK]`...
//!
//! As HF tokenizers `tokenizer/added_vocabulary.rs`: before normalization the
//! raw text is split on the added tokens that are not normalized (leftmost
//! longest match; `single_word`, `lstrip`, `rstrip` honoured), each match
//! becomes its token, and only the text between matches is normalized.

use unicode_categories::UnicodeCategories;

/// An added token as tokenizer.json describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub id: u32,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: bool,
    pub special: bool,
}

impl AddedToken {
    /// A special token as HF's `add_special_tokens` makes it.
    pub fn special(content: &str, id: u32) -> Self {
        AddedToken {
            content: content.to_string(),
            id,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: true,
        }
    }
}

/// A piece of the raw text: plain text, or an added token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Byte range of text to normalize and split.
    Text(usize, usize),
    /// Byte range matched by the added token with this id.
    Token(u32, usize, usize),
}

/// The added tokens, indexed for matching.
#[derive(Clone, Debug)]
pub struct AddedVocabulary {
    tokens: Vec<AddedToken>,
    /// Indices into `tokens` of the tokens to match, longest first.
    matchable: Vec<usize>,
    /// First bytes of the matchable tokens.
    first_bytes: [bool; 256],
}

impl Default for AddedVocabulary {
    fn default() -> Self {
        AddedVocabulary::new(Vec::new())
    }
}

/// Regex `\w` (word char): alphanumeric, mark, connector punctuation.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_mark() || c.is_punctuation_connector() || c == '\u{200D}'
}

impl AddedVocabulary {
    pub fn new(tokens: Vec<AddedToken>) -> Self {
        let mut matchable: Vec<usize> = (0..tokens.len())
            .filter(|&index| {
                tokens
                    .get(index)
                    .is_some_and(|token| !token.content.is_empty())
            })
            .collect();
        matchable.sort_by_key(|&index| {
            std::cmp::Reverse(tokens.get(index).map_or(0, |token| token.content.len()))
        });
        let mut first_bytes = [false; 256];
        for token in matchable.iter().filter_map(|&index| tokens.get(index)) {
            if let Some(&byte) = token.content.as_bytes().first() {
                first_bytes[byte as usize] = true;
            }
        }
        AddedVocabulary {
            tokens,
            matchable,
            first_bytes,
        }
    }

    pub fn tokens(&self) -> &[AddedToken] {
        &self.tokens
    }

    pub fn by_id(&self, id: u32) -> Option<&AddedToken> {
        self.tokens.iter().find(|token| token.id == id)
    }

    pub fn by_content(&self, content: &str) -> Option<&AddedToken> {
        self.tokens.iter().find(|token| token.content == content)
    }

    /// Longest token matching at byte `at` of `text`.
    fn match_at(&self, text: &str, at: usize) -> Option<&AddedToken> {
        let rest = text.get(at..)?;
        self.matchable
            .iter()
            .filter_map(|&index| self.tokens.get(index))
            .find(|token| rest.starts_with(token.content.as_str()))
    }

    /// Split `text` into plain text and added-token pieces.
    pub fn split(&self, text: &str, pieces: &mut Vec<Piece>) {
        pieces.clear();
        if self.matchable.is_empty() {
            pieces.push(Piece::Text(0, text.len()));
            return;
        }
        let bytes = text.as_bytes();
        let mut done = 0; // end of the last piece pushed
        let mut at = 0; // where the search resumes
        while at < bytes.len() {
            let Some(&byte) = bytes.get(at) else { break };
            if !self.first_bytes[byte as usize] || !text.is_char_boundary(at) {
                at += 1;
                continue;
            }
            let Some(token) = self.match_at(text, at) else {
                at += 1;
                continue;
            };
            let mut start = at;
            let mut stop = at + token.content.len();
            at = stop;
            if start < done {
                continue;
            }
            if token.single_word {
                let before = text.get(..start).and_then(|head| head.chars().next_back());
                let after = text.get(stop..).and_then(|tail| tail.chars().next());
                if before.is_some_and(is_word_char) || after.is_some_and(is_word_char) {
                    continue;
                }
            }
            if token.lstrip {
                let head = text.get(done..start).unwrap_or("");
                start = done + head.trim_end().len();
            }
            if token.rstrip {
                let tail = text.get(stop..).unwrap_or("");
                stop += tail.len() - tail.trim_start().len();
            }
            if done < start {
                pieces.push(Piece::Text(done, start));
            }
            pieces.push(Piece::Token(token.id, start, stop));
            done = stop;
        }
        if done < text.len() || pieces.is_empty() {
            pieces.push(Piece::Text(done, text.len()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vocabulary() -> AddedVocabulary {
        let mut strip = AddedToken::special("<s>", 7);
        strip.lstrip = true;
        strip.rstrip = true;
        let mut word = AddedToken::special("cat", 8);
        word.single_word = true;
        AddedVocabulary::new(vec![
            AddedToken::special("[SEP]", 1),
            AddedToken::special("[SEP][SEP]", 2),
            strip,
            word,
        ])
    }

    fn split(text: &str) -> Vec<Piece> {
        let mut pieces = Vec::new();
        vocabulary().split(text, &mut pieces);
        pieces
    }

    #[test]
    fn leftmost_longest() {
        assert_eq!(
            split("a[SEP][SEP]b[SEP]"),
            [
                Piece::Text(0, 1),
                Piece::Token(2, 1, 11),
                Piece::Text(11, 12),
                Piece::Token(1, 12, 17)
            ]
        );
    }

    #[test]
    fn strip_and_single_word() {
        assert_eq!(
            split("a  <s>  b"),
            [Piece::Text(0, 1), Piece::Token(7, 1, 8), Piece::Text(8, 9)]
        );
        assert_eq!(split("cats"), [Piece::Text(0, 4)]);
        assert_eq!(
            split("a cat."),
            [Piece::Text(0, 2), Piece::Token(8, 2, 5), Piece::Text(5, 6)]
        );
    }

    #[test]
    fn empty_text() {
        assert_eq!(split(""), [Piece::Text(0, 0)]);
    }
}
