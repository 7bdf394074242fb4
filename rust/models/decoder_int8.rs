//! Which dense layers of a decoder run in int8, with how many bits per activation: the
//! decoder's counterpart of `quantization::Quantization` (kept apart from the encoder's so
//! the int8 scheme can change in one place). Modules are named as in the family table:
//! the layer's BERT modules, its cross-attention's, the LM head's transform and decoder.

use std::collections::BTreeMap;

use super::families::{DecoderFamily, BERT_DECODER};
use super::heads::LmHeadBits;
use crate::error::{Error, Result};
use crate::quantization::Int8Layer;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecoderQuantization {
    activation_bits: BTreeMap<String, u32>,
}

/// Every module a decoder can run in int8, in table order.
pub fn quantizable(family: &DecoderFamily) -> Vec<&'static str> {
    let mut modules: Vec<&'static str> = family.body.layer.dense().to_vec();
    modules.extend(family.cross_attention.dense());
    modules.extend([family.lm_head.transform, family.lm_head.decoder]);
    modules
}

impl DecoderQuantization {
    /// `modules`: `(module, activation bits)`. Modules stacked into one product (query, key
    /// and value; the cross-attention's key and value) must be quantized alike.
    pub fn new(modules: impl IntoIterator<Item = (String, u32)>) -> Result<Self> {
        let source = "decoder quantization";
        let known = quantizable(&BERT_DECODER);
        let mut activation_bits = BTreeMap::new();
        for (name, bits) in modules {
            if !known.contains(&name.as_str()) {
                return Err(Error::config(
                    source,
                    format!("unknown layer {name:?} (quantizable: {})", known.join(", ")),
                ));
            }
            activation_bits.insert(name, bits);
        }
        let quantization = DecoderQuantization { activation_bits };
        let layer = BERT_DECODER.body.layer;
        let cross = BERT_DECODER.cross_attention;
        let stacked: [&[&str]; 2] = [
            &[layer.query, layer.key, layer.value],
            &[cross.key, cross.value],
        ];
        for group in stacked {
            if group
                .iter()
                .any(|name| quantization.bits(name) != quantization.bits(group[0]))
            {
                return Err(Error::config(
                    source,
                    format!(
                        "{} must be quantized alike (they share one input)",
                        group.join(", ")
                    ),
                ));
            }
        }
        Ok(quantization)
    }

    /// The activation bits of `module` when it runs in int8.
    pub fn bits(&self, module: &str) -> Option<u32> {
        self.activation_bits.get(module).copied()
    }

    /// How `module` runs in int8, if it does: 8-bit activations without outlier channels
    /// (the decoder is not calibrated).
    pub fn int8(&self, module: &str) -> Option<Int8Layer> {
        self.bits(module).map(|activation_bits| Int8Layer {
            activation_bits,
            outliers: 0,
        })
    }

    pub fn lm_head(&self) -> LmHeadBits {
        LmHeadBits {
            transform: self.int8(BERT_DECODER.lm_head.transform),
            decoder: self.int8(BERT_DECODER.lm_head.decoder),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_modules_go_together() {
        let all = quantizable(&BERT_DECODER);
        assert_eq!(all.len(), 12);
        let every = DecoderQuantization::new(all.iter().map(|n| (n.to_string(), 8)));
        let decoder = every.ok().and_then(|q| q.lm_head().decoder);
        assert_eq!(decoder.map(|layer| layer.activation_bits), Some(8));
        assert!(DecoderQuantization::new([("crossattention.self.key".to_string(), 8)]).is_err());
        assert!(DecoderQuantization::new([("pooler.dense".to_string(), 8)]).is_err());
    }
}
