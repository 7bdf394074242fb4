//! Encoder configuration, read from a Hugging Face `config.json`.
//!
//! Mirrors `transformers.BertConfig`: fields that are missing take Hugging
//! Face's defaults, except the sizes that define the architecture
//! (`vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
//! `intermediate_size`), for which no default can be right: those are errors.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The feed-forward activation (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: x * Phi(x), with the exact erf.
    GeluErf,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

impl Activation {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// How positions enter the embeddings (`position_embedding_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionEmbedding {
    /// A learned table `embeddings.position_embeddings.weight`.
    Absolute,
    /// The fixed sin/cos encoding of "Attention Is All You Need", computed.
    Sinusoidal,
}

/// A validated encoder configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    /// 0 when the model has no token-type embeddings (DistilBERT).
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub position_embedding_type: PositionEmbedding,
}

/// `config.json` as written, before validation. Unknown fields are ignored.
#[derive(Deserialize)]
struct RawConfig {
    vocab_size: Option<i64>,
    hidden_size: Option<i64>,
    num_hidden_layers: Option<i64>,
    num_attention_heads: Option<i64>,
    intermediate_size: Option<i64>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<i64>,
    type_vocab_size: Option<i64>,
    layer_norm_eps: Option<f64>,
    position_embedding_type: Option<String>,
}

impl EncoderConfig {
    /// Parse and validate `config.json` text; `source_name` names the file in errors.
    pub fn from_json(text: &str, source_name: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text)
            .map_err(|err| Error::config(source_name, format!("invalid config: {err}")))?;
        let size = |field: &str, value: Option<i64>, default: Option<i64>| -> Result<usize> {
            let value = value.or(default).ok_or_else(|| {
                Error::config(source_name, format!("missing required field '{field}'"))
            })?;
            usize::try_from(value).map_err(|_| {
                Error::config(source_name, format!("'{field}' must be >= 0, got {value}"))
            })
        };
        let hidden_act_name = raw.hidden_act.unwrap_or_else(|| "gelu".to_owned());
        let hidden_act = Activation::from_name(&hidden_act_name).ok_or_else(|| {
            Error::config(
                source_name,
                format!(
                    "unsupported 'hidden_act' {hidden_act_name:?} \
                     (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)"
                ),
            )
        })?;
        let position_name = raw
            .position_embedding_type
            .unwrap_or_else(|| "absolute".to_owned());
        let position_embedding_type = match position_name.as_str() {
            "absolute" => PositionEmbedding::Absolute,
            "sinusoidal" => PositionEmbedding::Sinusoidal,
            other => {
                return Err(Error::config(
                    source_name,
                    format!(
                        "unsupported 'position_embedding_type' {other:?} \
                         (supported: absolute, sinusoidal)"
                    ),
                ))
            }
        };
        let config = EncoderConfig {
            vocab_size: size("vocab_size", raw.vocab_size, None)?,
            hidden_size: size("hidden_size", raw.hidden_size, None)?,
            num_hidden_layers: size("num_hidden_layers", raw.num_hidden_layers, None)?,
            num_attention_heads: size("num_attention_heads", raw.num_attention_heads, None)?,
            intermediate_size: size("intermediate_size", raw.intermediate_size, None)?,
            hidden_act,
            max_position_embeddings: size(
                "max_position_embeddings",
                raw.max_position_embeddings,
                Some(512),
            )?,
            type_vocab_size: size("type_vocab_size", raw.type_vocab_size, Some(2))?,
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12),
            position_embedding_type,
        };
        config.validate(source_name)?;
        Ok(config)
    }

    /// Check the relations between fields.
    pub fn validate(&self, source_name: &str) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(source_name, format!("'{field}' must be > 0")));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(Error::config(
                source_name,
                format!(
                    "'hidden_size' ({}) is not a multiple of 'num_attention_heads' ({})",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(Error::config(
                source_name,
                format!(
                    "'layer_norm_eps' must be finite and >= 0, got {}",
                    self.layer_norm_eps
                ),
            ));
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16}"#;

    #[test]
    fn defaults_follow_hugging_face() -> Result<()> {
        let config = EncoderConfig::from_json(MINIMAL, "config.json")?;
        assert_eq!(config.hidden_act, Activation::GeluErf);
        assert_eq!(config.max_position_embeddings, 512);
        assert_eq!(config.type_vocab_size, 2);
        assert_eq!(config.layer_norm_eps, 1e-12);
        assert_eq!(config.position_embedding_type, PositionEmbedding::Absolute);
        assert_eq!(config.head_size(), 4);
        Ok(())
    }

    #[test]
    fn rejects_bad_configs() {
        let cases = [
            (
                r#"{"hidden_size": 8}"#,
                "missing required field 'vocab_size'",
            ),
            (
                r#"{"vocab_size": 10, "hidden_size": 9, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16}"#,
                "not a multiple",
            ),
            (
                r#"{"vocab_size": -1, "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16}"#,
                "'vocab_size' must be >= 0",
            ),
            (
                r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "swish"}"#,
                "unsupported 'hidden_act'",
            ),
            (r#"{"vocab_size": "ten"}"#, "invalid config"),
            ("not json", "invalid config"),
        ];
        for (text, expected) in cases {
            match EncoderConfig::from_json(text, "cfg.json") {
                Ok(config) => panic!("accepted {text}: {config:?}"),
                Err(err) => {
                    let message = err.to_string();
                    assert!(message.starts_with("cfg.json: "), "{message}");
                    assert!(message.contains(expected), "{message}");
                }
            }
        }
    }
}
