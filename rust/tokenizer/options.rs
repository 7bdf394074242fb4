//! The options of encoding a batch, validated from the names the Python API
//! uses (those of HF transformers' `tokenizer(texts, truncation=..., padding=...)`).

use super::padding::{check_length, PaddingLength};
use super::truncation::{Truncation, TruncationStrategy};
use crate::error::{Error, Result};

/// Padding asked for; the pad token is the tokenizer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaddingOptions {
    pub length: PaddingLength,
    pub pad_to_multiple_of: Option<usize>,
}

/// How to encode a batch: special tokens, truncation, padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    pub add_special_tokens: bool,
    pub truncation: Option<Truncation>,
    pub padding: Option<PaddingOptions>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            add_special_tokens: true,
            truncation: None,
            padding: None,
        }
    }
}

impl EncodeOptions {
    /// `truncation`: a strategy name of [`TruncationStrategy::parse`], which needs
    /// `max_length`; `padding`: a name of [`PaddingLength::parse`]; `None`: neither.
    pub fn parse(
        add_special_tokens: bool,
        truncation: Option<&str>,
        max_length: Option<usize>,
        padding: Option<&str>,
        pad_to_multiple_of: Option<usize>,
    ) -> Result<Self> {
        let truncation = truncation
            .map(|name| -> Result<Truncation> {
                let strategy = TruncationStrategy::parse(name)?;
                let max_length = max_length
                    .ok_or_else(|| Error::Tokenizer("truncation needs a max_length".to_string()))?;
                Ok(Truncation {
                    max_length,
                    strategy,
                })
            })
            .transpose()?;
        let padding = padding
            .map(|name| -> Result<PaddingOptions> {
                let length = PaddingLength::parse(name, max_length)?;
                if let Some(multiple) = pad_to_multiple_of {
                    check_length("pad_to_multiple_of", multiple)?;
                }
                Ok(PaddingOptions {
                    length,
                    pad_to_multiple_of,
                })
            })
            .transpose()?;
        Ok(EncodeOptions {
            add_special_tokens,
            truncation,
            padding,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tokenizer::padding::MAX_PADDED_LENGTH;

    #[test]
    fn parses_the_python_names() {
        let options =
            EncodeOptions::parse(false, Some("only_first"), Some(9), Some("longest"), Some(8))
                .unwrap();
        assert!(!options.add_special_tokens);
        assert_eq!(
            options.truncation,
            Some(Truncation {
                max_length: 9,
                strategy: TruncationStrategy::OnlyFirst
            })
        );
        assert_eq!(
            options.padding,
            Some(PaddingOptions {
                length: PaddingLength::Longest,
                pad_to_multiple_of: Some(8)
            })
        );
        assert_eq!(
            EncodeOptions::parse(true, None, None, None, None).unwrap(),
            EncodeOptions::default()
        );
    }

    #[test]
    fn refuses_what_cannot_work() {
        let refused = [
            EncodeOptions::parse(true, Some("longest_first"), None, None, None),
            EncodeOptions::parse(true, Some("sideways"), Some(4), None, None),
            EncodeOptions::parse(true, None, None, Some("max_length"), None),
            EncodeOptions::parse(
                true,
                None,
                None,
                Some("longest"),
                Some(MAX_PADDED_LENGTH + 1),
            ),
        ];
        for result in refused {
            assert!(matches!(result, Err(Error::Tokenizer(_))), "{result:?}");
        }
    }
}
