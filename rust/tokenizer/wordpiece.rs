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

/// The longest vocabulary piece of `word` at byte `start` (a whole token at
/// 0, a continuation after): (id, length in bytes). Trie walk.
#[inline]
pub fn longest_piece(vocab: &Vocab, word: &str, start: usize) -> Option<(u32, usize)> {
    let bytes = word.as_bytes().get(start..)?;
    if start == 0 {
        vocab.longest_match(bytes)
    } else {
        vocab.longest_continuation_match(bytes)
    }
}

/// The same as [`longest_piece`], the way HF searches: every end from the
/// longest possible down, each slice looked up in the hash map. The
/// reference the trie is tested against.
pub fn longest_piece_naive(vocab: &Vocab, word: &str, start: usize) -> Option<(u32, usize)> {
    let longest = if start == 0 {
        vocab.longest()
    } else {
        vocab.longest_continuation()
    };
    let mut end = floor_boundary(word, start.saturating_add(longest));
    while end > start {
        let piece = word.get(start..end)?;
        let id = if start == 0 {
            vocab.id(piece)
        } else {
            vocab.continuation_id(piece)
        };
        if let Some(id) = id {
            return Some((id, end - start));
        }
        end = previous_boundary(word, end);
    }
    None
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
                .map_or(first, |&origin| origin.saturating_add(1));
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
                let found =
                    longest_piece(vocab, word, start).map(|(id, length)| (id, start + length));
                match found {
                    Some((id, end)) => {
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
    fn trie_equals_naive_search() {
        let vocab = vocab();
        let alphabet = ["u", "n", "a", "f", "b", "l", "e", "é", "x", "#"];
        // Every word of up to 5 letters from the alphabet, at every char start.
        let mut words = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = words
                .iter()
                .flat_map(|word| alphabet.iter().map(move |letter| format!("{word}{letter}")))
                .collect();
            words.extend(longer);
            words.dedup();
        }
        let mut compared = 0;
        for word in &words {
            for (start, _) in word.char_indices() {
                let fast = longest_piece(&vocab, word, start);
                let naive = longest_piece_naive(&vocab, word, start);
                assert_eq!(fast, naive, "{word} at {start}");
                compared += 1;
            }
        }
        assert!(compared > 100_000);
    }

    #[test]
    fn multibyte_offsets_in_chars() {
        let tokens = run("éé", 100);
        assert_eq!(ids(&tokens), [6, 7]);
        assert_eq!((tokens[1].start, tokens[1].end), (1, 2));
    }
}
