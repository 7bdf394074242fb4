//! WordPiece: greedy longest-match-first split of a word into vocabulary
//! pieces, continuation pieces carrying the `##` prefix; a word with no full
//! split, or longer than `max_input_chars_per_word` chars, is one `[UNK]`.
//!
//! Mirrors HF tokenizers `models/wordpiece/mod.rs` (`WordPiece::tokenize`).
//! Lookups use `&str` slices of the word (continuations in a map keyed
//! without the prefix), and the search starts no longer than the longest
//! token, so no string is built per candidate.

use super::vocab::Vocab;

/// One token: its id and its char offsets `[start, end)` in the original text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: u32,
    pub start: u32,
    pub end: u32,
}

/// The WordPiece model options.
#[derive(Clone, Debug)]
pub struct WordPiece {
    pub unk_id: u32,
    pub max_input_chars_per_word: usize,
}

/// Largest char boundary of `word` that is `<= index`.
#[inline]
fn floor_boundary(word: &str, mut index: usize) -> usize {
    if index >= word.len() {
        return word.len();
    }
    while index > 0 && !word.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Char boundary just before `index` (> 0).
#[inline]
fn previous_boundary(word: &str, index: usize) -> usize {
    floor_boundary(word, index.saturating_sub(1))
}

impl WordPiece {
    /// Split `word` (normalized) into tokens appended to `out`. `origins[b]`
    /// is the original char index of byte `b` of `word`.
    pub fn tokenize(&self, vocab: &Vocab, word: &str, origins: &[u32], out: &mut Vec<Token>) {
        let offsets = |start: usize, end: usize| -> (u32, u32) {
            let first = origins.get(start).copied().unwrap_or(0);
            let last = end
                .checked_sub(1)
                .and_then(|index| origins.get(index))
                .map_or(first, |&origin| origin + 1);
            (first, last)
        };
        if word.is_empty() {
            return;
        }
        let mark = out.len();
        let too_long = word.len() > self.max_input_chars_per_word
            && word.chars().count() > self.max_input_chars_per_word;
        if !too_long {
            let mut start = 0;
            let mut complete = true;
            while start < word.len() {
                let (longest, table_start) = if start == 0 {
                    (vocab.longest(), true)
                } else {
                    (vocab.longest_continuation(), false)
                };
                let mut end = floor_boundary(word, start.saturating_add(longest));
                let mut found = None;
                while end > start {
                    let Some(piece) = word.get(start..end) else {
                        break;
                    };
                    let id = if table_start {
                        vocab.id(piece)
                    } else {
                        vocab.continuation_id(piece)
                    };
                    if let Some(id) = id {
                        found = Some(id);
                        break;
                    }
                    end = previous_boundary(word, end);
                }
                match found {
                    Some(id) => {
                        let (first, last) = offsets(start, end);
                        out.push(Token {
                            id,
                            start: first,
                            end: last,
                        });
                        start = end;
                    }
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                return;
            }
        }
        out.truncate(mark);
        let (first, last) = offsets(0, word.len());
        out.push(Token {
            id: self.unk_id,
            start: first,
            end: last,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        let text = "[UNK]\nun\n##aff\n##able\naff\n##a\né\n##é\n";
        Vocab::from_vocab_txt(text, "##", "test").unwrap()
    }

    fn run(word: &str, max_chars: usize) -> Vec<Token> {
        let origins: Vec<u32> = word
            .char_indices()
            .zip(0u32..)
            .flat_map(|((_, c), index)| std::iter::repeat_n(index, c.len_utf8()))
            .collect();
        let model = WordPiece {
            unk_id: 0,
            max_input_chars_per_word: max_chars,
        };
        let mut out = Vec::new();
        model.tokenize(&vocab(), word, &origins, &mut out);
        out
    }

    fn ids(tokens: &[Token]) -> Vec<u32> {
        tokens.iter().map(|token| token.id).collect()
    }

    #[test]
    fn greedy_longest_first() {
        let tokens = run("unaffable", 100);
        assert_eq!(ids(&tokens), [1, 2, 3]);
        let offsets: Vec<(u32, u32)> = tokens.iter().map(|t| (t.start, t.end)).collect();
        assert_eq!(offsets, [(0, 2), (2, 5), (5, 9)]);
    }

    #[test]
    fn no_split_is_unk() {
        let tokens = run("unaffx", 100);
        assert_eq!(
            tokens,
            [Token {
                id: 0,
                start: 0,
                end: 6
            }]
        );
    }

    #[test]
    fn too_long_is_unk() {
        assert_eq!(ids(&run("unaff", 4)), [0]);
        assert_eq!(ids(&run("unaff", 5)), [1, 2]);
    }

    #[test]
    fn multibyte_offsets_in_chars() {
        let tokens = run("éé", 100);
        assert_eq!(ids(&tokens), [6, 7]);
        assert_eq!((tokens[1].start, tokens[1].end), (1, 2));
    }
}
