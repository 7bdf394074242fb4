//! From tokens to model inputs: the special-token template
//! (`[CLS] A [SEP] B [SEP]`) and type ids, as HF tokenizers
//! `processors/template.rs`. Truncation is in `truncation.rs`, padding in
//! `padding.rs`.

use super::wordpiece::Token;

/// One token of an encoding, everything the model and the offsets need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedToken {
    pub id: u32,
    pub type_id: u32,
    /// Char offsets `[start, end)` into the text the token comes from;
    /// (0, 0) for special tokens added by the template and for padding.
    pub start: u32,
    pub end: u32,
    /// Added by the template or padding (HF `special_tokens_mask`).
    pub special: bool,
    /// Padding (attention mask 0).
    pub padding: bool,
    /// Which input the token comes from: 0, 1, or `NO_SEQUENCE`.
    pub sequence: u8,
}

/// `EncodedToken::sequence` of special and padding tokens.
pub const NO_SEQUENCE: u8 = u8::MAX;

/// One encoded text (or pair), HF tokenizers' `Encoding`: one allocation,
/// the per-field lists are views.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoding {
    pub tokens: Vec<EncodedToken>,
}

impl Encoding {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn ids(&self) -> Vec<u32> {
        self.tokens.iter().map(|token| token.id).collect()
    }

    pub fn type_ids(&self) -> Vec<u32> {
        self.tokens.iter().map(|token| token.type_id).collect()
    }

    pub fn offsets(&self) -> Vec<(u32, u32)> {
        self.tokens
            .iter()
            .map(|token| (token.start, token.end))
            .collect()
    }

    pub fn attention_mask(&self) -> Vec<u32> {
        self.tokens
            .iter()
            .map(|token| u32::from(!token.padding))
            .collect()
    }

    pub fn special_tokens_mask(&self) -> Vec<u32> {
        self.tokens
            .iter()
            .map(|token| u32::from(token.special))
            .collect()
    }

    pub fn sequence_ids(&self) -> Vec<Option<u8>> {
        self.tokens
            .iter()
            .map(|token| (token.sequence != NO_SEQUENCE).then_some(token.sequence))
            .collect()
    }

    fn push(&mut self, id: u32, type_id: u32, offsets: (u32, u32), special: bool, sequence: u8) {
        self.tokens.push(EncodedToken {
            id,
            type_id,
            start: offsets.0,
            end: offsets.1,
            special,
            padding: false,
            sequence,
        });
    }

    /// Pad on the right to `length` tokens.
    pub fn pad(&mut self, length: usize, pad_id: u32, pad_type_id: u32) {
        if self.tokens.len() >= length {
            return;
        }
        self.tokens.resize(
            length,
            EncodedToken {
                id: pad_id,
                type_id: pad_type_id,
                start: 0,
                end: 0,
                special: true,
                padding: true,
                sequence: NO_SEQUENCE,
            },
        );
    }
}

/// One element of a post-processing template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePiece {
    /// Special token ids with their type id.
    Special { ids: Vec<u32>, type_id: u32 },
    /// Input 0 (A) or 1 (B) with the type id its tokens get.
    Sequence { index: u8, type_id: u32 },
}

/// The post-processor: templates for a single text and for a pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub single: Vec<TemplatePiece>,
    pub pair: Vec<TemplatePiece>,
}

impl Template {
    /// BERT: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, B with type id 1.
    pub fn bert(cls_id: u32, sep_id: u32) -> Self {
        let special = |id, type_id| TemplatePiece::Special {
            ids: vec![id],
            type_id,
        };
        let sequence = |index, type_id| TemplatePiece::Sequence { index, type_id };
        Template {
            single: vec![special(cls_id, 0), sequence(0, 0), special(sep_id, 0)],
            pair: vec![
                special(cls_id, 0),
                sequence(0, 0),
                special(sep_id, 0),
                sequence(1, 1),
                special(sep_id, 1),
            ],
        }
    }

    /// No special tokens (a tokenizer.json without post-processor): the
    /// texts concatenated, type ids 0 and 1 as HF encodes them.
    pub fn none() -> Self {
        let sequence = |index: u8| TemplatePiece::Sequence {
            index,
            type_id: u32::from(index),
        };
        Template {
            single: vec![sequence(0)],
            pair: vec![sequence(0), sequence(1)],
        }
    }

    /// Number of special tokens the template adds.
    pub fn added_tokens(&self, pair: bool) -> usize {
        let pieces = if pair { &self.pair } else { &self.single };
        pieces
            .iter()
            .map(|piece| match piece {
                TemplatePiece::Special { ids, .. } => ids.len(),
                TemplatePiece::Sequence { .. } => 0,
            })
            .sum()
    }

    /// Assemble the encoding of `first` (and `second`).
    pub fn apply(&self, first: &[Token], second: Option<&[Token]>, add_special: bool) -> Encoding {
        let total = first.len() + second.map_or(0, <[Token]>::len) + self.added_tokens(true);
        let mut encoding = Encoding {
            tokens: Vec::with_capacity(total),
        };
        let push_sequence = |encoding: &mut Encoding, tokens: &[Token], type_id, seq| {
            for token in tokens {
                encoding.push(token.id, type_id, (token.start, token.end), false, seq);
            }
        };
        let pieces = if second.is_some() {
            &self.pair
        } else {
            &self.single
        };
        for piece in pieces {
            match piece {
                TemplatePiece::Special { ids, type_id } => {
                    // Without special tokens the template still sets type ids.
                    if !add_special {
                        continue;
                    }
                    for &id in ids {
                        encoding.push(id, *type_id, (0, 0), true, NO_SEQUENCE);
                    }
                }
                TemplatePiece::Sequence { index, type_id } => {
                    let tokens = if *index == 0 { Some(first) } else { second };
                    if let Some(tokens) = tokens {
                        push_sequence(&mut encoding, tokens, *type_id, *index);
                    }
                }
            }
        }
        encoding
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// `n` consecutive one-character tokens with ids from 1000 (shared by the
    /// truncation tests).
    pub(crate) fn tokens(n: u32) -> Vec<Token> {
        (0..n)
            .map(|id| Token {
                id: 1000 + id,
                start: id,
                end: id + 1,
            })
            .collect()
    }
}
