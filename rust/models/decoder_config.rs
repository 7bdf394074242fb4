//! A decoder's configuration: the `decoder` section of an `EncoderDecoderModel`'s
//! `config.json`, BERT's fields plus the decoder flags of the family table.

use serde_json::Value;

use super::families::BERT_DECODER;
use crate::config::EncoderConfig;
use crate::error::{Error, Result};

/// A decoder's configuration: BERT's fields plus the decoder flags.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    pub model: EncoderConfig,
    /// Whether the checkpoint's decoder matrix is the word embeddings (HF's default).
    pub tie_word_embeddings: bool,
}

impl DecoderConfig {
    /// Parse the `decoder` section of an `EncoderDecoderModel`'s `config.json`.
    pub fn from_json(text: &str, source: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|err| Error::config(source, format!("invalid config: {err}")))?;
        Self::from_value(&value, source)
    }

    /// [`DecoderConfig::from_json`] on the parsed JSON.
    pub fn from_value(value: &Value, source: &str) -> Result<Self> {
        let model = EncoderConfig::from_value(value, source)?;
        let flag = |name: &str, default: bool| match value.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(other) => Err(Error::config(
                source,
                format!("'{name}' must be true or false, got {other}"),
            )),
        };
        let family = &BERT_DECODER;
        for name in [family.is_decoder, family.add_cross_attention] {
            if !flag(name, false)? {
                return Err(Error::config(
                    source,
                    format!("'{name}' is not true: this is not a decoder with cross-attention to an encoder"),
                ));
            }
        }
        Ok(DecoderConfig {
            model,
            tie_word_embeddings: flag(family.tie_word_embeddings, true)?,
        })
    }
}
