//! Truncation of a text or pair to `max_length` tokens, as HF tokenizers
//! `utils/truncation.rs` (`longest_first`, `only_first`, `only_second`;
//! right side, no stride). The caller keeps room for the special tokens.

use super::wordpiece::Token;
use crate::error::{Error, Result};

/// How to truncate a pair (HF `TruncationStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncationStrategy {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

impl TruncationStrategy {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "longest_first" => Ok(TruncationStrategy::LongestFirst),
            "only_first" => Ok(TruncationStrategy::OnlyFirst),
            "only_second" => Ok(TruncationStrategy::OnlySecond),
            other => Err(Error::Tokenizer(format!(
                "unknown truncation strategy '{other}' (expected longest_first, only_first \
                 or only_second)"
            ))),
        }
    }
}

/// Truncation to `max_length` tokens, special tokens included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub max_length: usize,
    pub strategy: TruncationStrategy,
}

/// Truncate the token lists to `max_length` tokens in total (specials
/// excluded: the caller subtracts them), as HF `truncate_encodings`.
pub fn truncate(
    first: &mut Vec<Token>,
    second: Option<&mut Vec<Token>>,
    max_length: usize,
    strategy: TruncationStrategy,
) -> Result<()> {
    if max_length == 0 {
        first.clear();
        if let Some(second) = second {
            second.clear();
        }
        return Ok(());
    }
    let total = first.len() + second.as_ref().map_or(0, |tokens| tokens.len());
    if total <= max_length {
        return Ok(());
    }
    let to_remove = total - max_length;
    match (strategy, second) {
        (TruncationStrategy::LongestFirst, Some(second)) => {
            let (mut n1, mut n2) = (first.len(), second.len());
            let swap = n1 > n2;
            if swap {
                std::mem::swap(&mut n1, &mut n2);
            }
            n2 = if n1 > max_length {
                n1
            } else {
                n1.max(max_length - n1)
            };
            if n1 + n2 > max_length {
                n1 = max_length / 2;
                n2 = n1 + max_length % 2;
            }
            if swap {
                std::mem::swap(&mut n1, &mut n2);
            }
            first.truncate(n1);
            second.truncate(n2);
        }
        (TruncationStrategy::LongestFirst, None) | (TruncationStrategy::OnlyFirst, _) => {
            if first.len() > to_remove {
                first.truncate(first.len() - to_remove);
            } else {
                return Err(too_short());
            }
        }
        (TruncationStrategy::OnlySecond, Some(second)) => {
            if second.len() > to_remove {
                second.truncate(second.len() - to_remove);
            } else {
                return Err(too_short());
            }
        }
        (TruncationStrategy::OnlySecond, None) => {
            return Err(Error::Tokenizer(
                "truncation 'only_second' needs pairs of texts".to_string(),
            ));
        }
    }
    Ok(())
}

fn too_short() -> Error {
    Error::Tokenizer(
        "truncation error: the sequence to truncate is too short to respect max_length".into(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tokenizer::encoding::tests::tokens;

    fn lengths(
        n1: u32,
        n2: u32,
        max: usize,
        strategy: TruncationStrategy,
    ) -> Result<(usize, usize)> {
        let (mut first, mut second) = (tokens(n1), tokens(n2));
        truncate(&mut first, Some(&mut second), max, strategy)?;
        Ok((first.len(), second.len()))
    }

    #[test]
    fn longest_first_like_hf() {
        use TruncationStrategy::LongestFirst as L;
        assert_eq!(lengths(3, 10, 8, L).unwrap(), (3, 5));
        assert_eq!(lengths(10, 3, 8, L).unwrap(), (5, 3));
        assert_eq!(lengths(10, 9, 7, L).unwrap(), (4, 3));
        assert_eq!(lengths(9, 10, 7, L).unwrap(), (3, 4));
        assert_eq!(lengths(2, 2, 7, L).unwrap(), (2, 2));
    }

    #[test]
    fn only_first_and_second() {
        use TruncationStrategy::{OnlyFirst, OnlySecond};
        assert_eq!(lengths(10, 3, 8, OnlyFirst).unwrap(), (5, 3));
        assert_eq!(lengths(3, 10, 8, OnlySecond).unwrap(), (3, 5));
        assert!(lengths(3, 10, 8, OnlyFirst).is_err());
        let mut single = tokens(4);
        assert!(truncate(&mut single, None, 2, OnlySecond).is_err());
    }
}
