//! Which dense layers of each encoder layer run in int8, with how many bits per activation
//! and how many outlier input channels kept in float32, and whether attention's two products
//! run in int8 too (from `config.json`'s `quantization_config`, parsed by the Python layer).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::models::families::BERT_LAYER;

/// The dense layers of a BERT layer, by their HF names inside `encoder.layer.N` (the
/// family table's).
pub const QUANTIZABLE: [&str; 6] = BERT_LAYER.dense();

/// int8 layers, their activation bits and outlier channels, and whether the word embeddings
/// are stored in int8; empty means a float32 model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quantization {
    activation_bits: BTreeMap<String, u32>,
    outlier_channels: BTreeMap<String, usize>,
    word_embeddings: bool,
    attention: bool,
}

/// How one int8 layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int8Layer {
    pub activation_bits: u32,
    /// Input channels kept out of the 8-bit activations (`{layer}.outlier_index`).
    pub outliers: usize,
}

impl Quantization {
    /// `modules`: `(name in QUANTIZABLE, activation bits)`. Query, key and value
    /// read the same input, so they are quantized together or not at all.
    pub fn new(modules: impl IntoIterator<Item = (String, u32)>) -> Result<Self> {
        Self::with_word_embeddings(modules, false)
    }

    /// As [`Quantization::new`]; `word_embeddings`: the word embedding table is
    /// int8 per row (`embeddings.word_embeddings.weight` with a `weight_scale`).
    pub fn with_word_embeddings(
        modules: impl IntoIterator<Item = (String, u32)>,
        word_embeddings: bool,
    ) -> Result<Self> {
        let source = "quantization_config";
        let mut activation_bits = BTreeMap::new();
        for (name, bits) in modules {
            if !QUANTIZABLE.contains(&name.as_str()) {
                return Err(Error::config(
                    source,
                    format!(
                        "unknown layer {name:?} (quantizable: {})",
                        QUANTIZABLE.join(", ")
                    ),
                ));
            }
            activation_bits.insert(name, bits);
        }
        let quantization = Quantization {
            activation_bits,
            outlier_channels: BTreeMap::new(),
            word_embeddings,
            attention: false,
        };
        let qkv: Vec<Option<u32>> = QUANTIZABLE[..3]
            .iter()
            .map(|name| quantization.bits(name))
            .collect();
        if qkv.iter().any(|bits| *bits != qkv[0]) {
            return Err(Error::config(
                source,
                "attention.self.query, key and value must be quantized alike \
                 (they share one input)",
            ));
        }
        Ok(quantization)
    }

    /// `outliers`: `(name of an int8 layer, outlier channels)`; query, key and value share
    /// their input, so they have the same count.
    pub fn with_outliers(
        mut self,
        outliers: impl IntoIterator<Item = (String, usize)>,
    ) -> Result<Self> {
        let source = "quantization_config";
        for (name, count) in outliers {
            if !self.activation_bits.contains_key(&name) {
                return Err(Error::config(
                    source,
                    format!("outlier_channels names {name:?}, which is not an int8 layer"),
                ));
            }
            self.outlier_channels.insert(name, count);
        }
        let qkv: Vec<usize> = QUANTIZABLE[..3]
            .iter()
            .map(|name| self.outliers(name))
            .collect();
        if qkv.iter().any(|count| *count != qkv[0]) {
            return Err(Error::config(
                source,
                "attention.self.query, key and value must have the same outlier channels \
                 (they share one input)",
            ));
        }
        Ok(self)
    }

    /// With `attention`, attention's two products run in int8 (`nn::attend_int8`) where query,
    /// key and value are int8 layers; without, in float32 (models quantized before the int8
    /// attention existed say nothing, and keep their results).
    pub fn with_attention(mut self, attention: bool) -> Self {
        self.attention = attention;
        self
    }

    /// Whether attention's products run in int8: asked for, and query, key and value int8.
    pub fn int8_attention(&self) -> bool {
        self.attention && self.bits(QUANTIZABLE[0]).is_some()
    }

    /// The activation bits of `module` when it runs in int8.
    pub fn bits(&self, module: &str) -> Option<u32> {
        self.activation_bits.get(module).copied()
    }

    /// The outlier channels of `module` (0 unless int8 with outliers).
    pub fn outliers(&self, module: &str) -> usize {
        self.outlier_channels.get(module).copied().unwrap_or(0)
    }

    /// How `module` runs in int8, if it does.
    pub fn int8(&self, module: &str) -> Option<Int8Layer> {
        self.bits(module).map(|activation_bits| Int8Layer {
            activation_bits,
            outliers: self.outliers(module),
        })
    }

    /// Whether the word embeddings are int8.
    pub fn word_embeddings(&self) -> bool {
        self.word_embeddings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_key_value_go_together() {
        let all = |bits: [u32; 3]| {
            Quantization::new(
                QUANTIZABLE[..3]
                    .iter()
                    .zip(bits)
                    .map(|(n, b)| (n.to_string(), b)),
            )
        };
        assert!(all([8, 8, 8]).is_ok());
        assert!(all([8, 8, 12]).is_err());
        assert!(Quantization::new([("attention.self.query".to_string(), 8)]).is_err());
        assert!(Quantization::new([("pooler.dense".to_string(), 8)]).is_err());
        let q = Quantization::new([("output.dense".to_string(), 12)]);
        assert_eq!(q.ok().and_then(|q| q.bits("output.dense")), Some(12));
    }

    #[test]
    fn attention_runs_in_int8_only_when_asked_and_its_projections_are_int8() -> Result<()> {
        let qkv = || QUANTIZABLE[..3].iter().map(|name| (name.to_string(), 8));
        assert!(!Quantization::new(qkv())?.int8_attention());
        assert!(Quantization::new(qkv())?
            .with_attention(true)
            .int8_attention());
        let ffn_only = Quantization::new([("output.dense".to_string(), 8)])?;
        assert!(!ffn_only.with_attention(true).int8_attention());
        assert!(!Quantization::default()
            .with_attention(true)
            .int8_attention());
        Ok(())
    }
}
