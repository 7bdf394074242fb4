//! Padding of a batch to one length, as HF tokenizers `utils/padding.rs`
//! (right side, `pad_to_multiple_of`), and the names the Python API gives it.

use super::encoding::{EncodedToken, Encoding};
use crate::error::{Error, Result};
use crate::memory;

/// Longest row padding may produce (far beyond any model's positions): a
/// caller's length beyond it could only exhaust memory.
pub const MAX_PADDED_LENGTH: usize = 1 << 24;

/// How to pad a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingLength {
    /// To the longest encoding of the batch.
    Longest,
    /// To this many tokens (longer encodings are left as they are).
    Fixed(usize),
}

impl PaddingLength {
    /// `"longest"`, or `"max_length"` (to `max_length` tokens), as HF transformers names
    /// its padding strategies.
    pub fn parse(name: &str, max_length: Option<usize>) -> Result<Self> {
        match name {
            "longest" => Ok(PaddingLength::Longest),
            "max_length" => {
                let length = max_length.ok_or_else(|| {
                    Error::Tokenizer("padding='max_length' needs a max_length".to_string())
                })?;
                check_length("max_length", length)?;
                Ok(PaddingLength::Fixed(length))
            }
            other => Err(Error::Tokenizer(format!(
                "unknown padding '{other}' (expected longest or max_length)"
            ))),
        }
    }
}

/// Refuse a pad length from the caller that could only exhaust memory (or overflow
/// rounding up to a multiple).
pub fn check_length(name: &str, value: usize) -> Result<()> {
    if value > MAX_PADDED_LENGTH {
        return Err(Error::Tokenizer(format!(
            "padding: {name}={value} is more than {MAX_PADDED_LENGTH} tokens"
        )));
    }
    Ok(())
}

/// Padding of a batch (always on the right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padding {
    pub length: PaddingLength,
    pub pad_to_multiple_of: Option<usize>,
    pub pad_id: u32,
    pub pad_type_id: u32,
}

/// Pad every encoding of the batch (HF `pad_encodings`). The padding tokens
/// are reserved first, fallibly: a length the machine cannot hold is an error
/// saying how much it needs (the length is the caller's).
pub fn pad(encodings: &mut [Encoding], padding: &Padding) -> Result<()> {
    let mut length = match padding.length {
        PaddingLength::Longest => encodings.iter().map(Encoding::len).max().unwrap_or(0),
        PaddingLength::Fixed(length) => length,
    };
    if let Some(multiple) = padding.pad_to_multiple_of {
        if multiple > 0 && length % multiple > 0 {
            length = length
                .checked_next_multiple_of(multiple)
                .ok_or_else(|| Error::Tokenizer(format!("padding to {length} tokens overflows")))?;
        }
    }
    let missing: usize = encodings
        .iter()
        .map(|encoding| length.saturating_sub(encoding.len()))
        .fold(0, usize::saturating_add);
    for encoding in encodings.iter_mut() {
        let extra = length.saturating_sub(encoding.len());
        if encoding.tokens.try_reserve_exact(extra).is_err() {
            return Err(Error::Tokenizer(format!(
                "not enough memory to pad {} texts to {length} tokens: the padding needs {}",
                encodings.len(),
                memory::human(memory::bytes_of::<EncodedToken>(missing))
            )));
        }
        encoding.pad(length, padding.pad_id, padding.pad_type_id);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tokenizer::encoding::tests::tokens;
    use crate::tokenizer::encoding::Template;

    #[test]
    fn template_and_padding() {
        let template = Template::bert(101, 102);
        assert_eq!(template.added_tokens(false), 2);
        assert_eq!(template.added_tokens(true), 3);
        let first = tokens(2);
        let second = tokens(1);
        let pair = template.apply(&first, Some(&second), true);
        assert_eq!(pair.ids(), [101, 1000, 1001, 102, 1000, 102]);
        assert_eq!(pair.type_ids(), [0, 0, 0, 0, 1, 1]);
        assert_eq!(pair.offsets()[1], (0, 1));
        assert_eq!(pair.offsets()[3], (0, 0));
        assert_eq!(pair.sequence_ids()[4], Some(1));
        assert_eq!(pair.special_tokens_mask(), [1, 0, 0, 1, 0, 1]);
        let single = template.apply(&first, None, true);
        let mut batch = vec![pair, single];
        pad(
            &mut batch,
            &Padding {
                length: PaddingLength::Longest,
                pad_to_multiple_of: Some(4),
                pad_id: 0,
                pad_type_id: 0,
            },
        )
        .unwrap();
        assert_eq!(batch[1].ids(), [101, 1000, 1001, 102, 0, 0, 0, 0]);
        assert_eq!(batch[1].attention_mask(), [1, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(batch[0].len(), 8);
    }

    #[test]
    fn padding_beyond_memory_is_an_error() {
        let mut batch = vec![Template::bert(101, 102).apply(&tokens(2), None, true)];
        let padding = Padding {
            length: PaddingLength::Fixed(usize::MAX / 64),
            pad_to_multiple_of: None,
            pad_id: 0,
            pad_type_id: 0,
        };
        let message = pad(&mut batch, &padding).unwrap_err().to_string();
        assert!(
            message.contains("not enough memory to pad 1 texts"),
            "{message}"
        );
        assert_eq!(batch[0].len(), 4);
    }

    #[test]
    fn names_as_transformers() {
        assert_eq!(
            PaddingLength::parse("longest", None).unwrap(),
            PaddingLength::Longest
        );
        assert_eq!(
            PaddingLength::parse("max_length", Some(7)).unwrap(),
            PaddingLength::Fixed(7)
        );
        let errors = [
            PaddingLength::parse("max_length", None),
            PaddingLength::parse("left", Some(7)),
            PaddingLength::parse("max_length", Some(MAX_PADDED_LENGTH + 1)),
        ];
        for error in errors {
            assert!(matches!(error, Err(Error::Tokenizer(_))), "{error:?}");
        }
    }
}
