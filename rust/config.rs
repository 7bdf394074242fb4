//! Encoder configuration, read from a Hugging Face `config.json`.
//!
//! Mirrors `transformers.BertConfig`: fields that are missing take Hugging
//! Face's defaults, except the sizes that define the architecture
//! (`vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
//! `intermediate_size`), for which no default can be right: those are errors.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::models::canonical;

/// More layers than any BERT-family model has: a config asking for more is
/// corrupt (and would make the tensor list itself exhaust memory).
pub const MAX_LAYERS: usize = 10_000;

/// Largest sinusoidal position table computed at load time (1 GiB of f32).
pub const MAX_SINUSOIDAL_VALUES: usize = 1 << 28;

pub use crate::ops::Activation;

/// Hugging Face's names of the activations (`hidden_act`).
impl Activation {
    /// The canonical name, as [`EncoderConfig::to_json`] writes it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::GeluErf => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_tanh" => {
                Some(Activation::GeluTanh)
            }
            "relu" => Some(Activation::Relu),
            "tanh" => Some(Activation::Tanh),
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
    /// Width of the embedding tables: `hidden_size` except in ELECTRA, whose
    /// `embeddings_project` maps it to `hidden_size`.
    pub embedding_size: usize,
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

/// `config.json` as written, before validation. Unknown fields are ignored;
/// the known ones are kept as JSON values so a wrong type is reported with
/// the field's name.
#[derive(Deserialize)]
struct RawConfig {
    vocab_size: Option<Value>,
    hidden_size: Option<Value>,
    embedding_size: Option<Value>,
    num_hidden_layers: Option<Value>,
    num_attention_heads: Option<Value>,
    intermediate_size: Option<Value>,
    hidden_act: Option<Value>,
    max_position_embeddings: Option<Value>,
    type_vocab_size: Option<Value>,
    layer_norm_eps: Option<Value>,
    position_embedding_type: Option<Value>,
}

/// A field's value of the expected JSON type (`None`: absent or null).
fn typed<'a, T>(
    source_name: &str,
    field: &str,
    value: &'a Option<Value>,
    expected: &str,
    convert: impl Fn(&'a Value) -> Option<T>,
) -> Result<Option<T>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => convert(value).map(Some).ok_or_else(|| {
            Error::config(
                source_name,
                format!("'{field}' must be {expected}, got {value}"),
            )
        }),
    }
}

impl EncoderConfig {
    /// Parse and validate `config.json` text of any family of [`families`] (translated
    /// to BERT's fields first); `source_name` names the file in errors.
    pub fn from_json(text: &str, source_name: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|err| Error::config(source_name, format!("invalid config: {err}")))?;
        Self::from_value(&value, source_name)
    }

    /// [`EncoderConfig::from_json`] on the parsed JSON.
    pub fn from_value(value: &Value, source_name: &str) -> Result<Self> {
        let invalid = |err: String| Error::config(source_name, format!("invalid config: {err}"));
        let object = value
            .as_object()
            .ok_or_else(|| invalid(format!("expected a JSON object, got {value}")))?;
        let canonical = canonical::canonical_config(object, source_name)?;
        let raw: RawConfig = serde_json::from_value(Value::Object(canonical))
            .map_err(|err| invalid(err.to_string()))?;
        let size = |field: &str, value: &Option<Value>, default: Option<i64>| -> Result<usize> {
            let value = typed(source_name, field, value, "an integer", Value::as_i64)?;
            let value = value.or(default).ok_or_else(|| {
                Error::config(source_name, format!("missing required field '{field}'"))
            })?;
            usize::try_from(value).map_err(|_| {
                Error::config(source_name, format!("'{field}' must be >= 0, got {value}"))
            })
        };
        let name = |field: &str, value: &Option<Value>, default: &str| -> Result<String> {
            let value = typed(source_name, field, value, "a string", Value::as_str)?;
            Ok(value.unwrap_or(default).to_owned())
        };
        let hidden_act_name = name("hidden_act", &raw.hidden_act, "gelu")?;
        let hidden_act = Activation::from_name(&hidden_act_name).ok_or_else(|| {
            Error::config(
                source_name,
                format!(
                    "unsupported 'hidden_act' {hidden_act_name:?} \
                     (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, tanh)"
                ),
            )
        })?;
        let position_name = name(
            "position_embedding_type",
            &raw.position_embedding_type,
            "absolute",
        )?;
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
        let vocab_size = size("vocab_size", &raw.vocab_size, None)?;
        let hidden_size = size("hidden_size", &raw.hidden_size, None)?;
        let config = EncoderConfig {
            vocab_size,
            hidden_size,
            embedding_size: size(
                "embedding_size",
                &raw.embedding_size,
                i64::try_from(hidden_size).ok(),
            )?,
            num_hidden_layers: size("num_hidden_layers", &raw.num_hidden_layers, None)?,
            num_attention_heads: size("num_attention_heads", &raw.num_attention_heads, None)?,
            intermediate_size: size("intermediate_size", &raw.intermediate_size, None)?,
            hidden_act,
            max_position_embeddings: size(
                "max_position_embeddings",
                &raw.max_position_embeddings,
                Some(512),
            )?,
            type_vocab_size: size("type_vocab_size", &raw.type_vocab_size, Some(2))?,
            layer_norm_eps: typed(
                source_name,
                "layer_norm_eps",
                &raw.layer_norm_eps,
                "a number",
                Value::as_f64,
            )?
            .unwrap_or(1e-12),
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
            ("embedding_size", self.embedding_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(source_name, format!("'{field}' must be > 0")));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::config(
                source_name,
                format!(
                    "'hidden_size' ({}) is not a multiple of 'num_attention_heads' ({})",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.num_hidden_layers > MAX_LAYERS {
            return Err(Error::config(
                source_name,
                format!(
                    "'num_hidden_layers' ({}) is more than {MAX_LAYERS}; is this a real model?",
                    self.num_hidden_layers
                ),
            ));
        }
        // Every tensor the config implies must have a size that can be
        // counted in bytes (no overflow downstream), and the sinusoidal table,
        // computed rather than read, must fit in memory.
        let hidden = self.hidden_size;
        let rows = [
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("embedding_size", self.embedding_size),
        ];
        for (field, value) in rows {
            let bytes = value
                .checked_mul(hidden.max(self.embedding_size))
                .and_then(|values| values.checked_mul(std::mem::size_of::<f32>()))
                .filter(|&bytes| isize::try_from(bytes).is_ok());
            if bytes.is_none() {
                return Err(Error::config(
                    source_name,
                    format!("'{field}' ({value}) x 'hidden_size' ({hidden}) is too large"),
                ));
            }
        }
        if self.position_embedding_type == PositionEmbedding::Sinusoidal
            && self
                .max_position_embeddings
                .saturating_mul(self.embedding_size)
                > MAX_SINUSOIDAL_VALUES
        {
            return Err(Error::config(
                source_name,
                format!(
                    "a sinusoidal position table of 'max_position_embeddings' ({}) x \
                     'hidden_size' ({hidden}) values is too large to compute",
                    self.max_position_embeddings
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

    /// The normalized configuration as JSON text, every field present.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The normalized configuration, every field present.
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "embedding_size": self.embedding_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act.name(),
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "position_embedding_type": match self.position_embedding_type {
                PositionEmbedding::Absolute => "absolute",
                PositionEmbedding::Sinusoidal => "sinusoidal",
            },
        })
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
        assert_eq!(config.embedding_size, config.hidden_size);
        let round_trip = EncoderConfig::from_json(&config.to_json(), "normalized")?;
        assert_eq!(round_trip, config);
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
            (
                r#"{"vocab_size": "ten"}"#,
                "'vocab_size' must be an integer, got \"ten\"",
            ),
            (
                r#"{"vocab_size": 10, "hidden_size": 8.5}"#,
                "'hidden_size' must be an integer, got 8.5",
            ),
            (
                r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": 3}"#,
                "'hidden_act' must be a string, got 3",
            ),
            (
                r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16, "layer_norm_eps": "x"}"#,
                "'layer_norm_eps' must be a number",
            ),
            (
                r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1000000000000,
                   "num_attention_heads": 2, "intermediate_size": 16}"#,
                "'num_hidden_layers' (1000000000000) is more than 10000",
            ),
            (
                r#"{"vocab_size": 9223372036854775807, "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16}"#,
                "'vocab_size' (9223372036854775807) x 'hidden_size' (8) is too large",
            ),
            (
                r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 16,
                   "max_position_embeddings": 1000000000000,
                   "position_embedding_type": "sinusoidal"}"#,
                "sinusoidal position table",
            ),
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
