//! Heads over a model's hidden states: the pooler (HF `BertPooler`) and the language-model
//! head (HF `BertLMPredictionHead`: transform, then the decoder matrix tied to the word
//! embeddings, plus its bias).

use super::families::{LmHeadNames, BERT};
use crate::attention::Span;
use crate::config::EncoderConfig;
use crate::dense::Dense;
use crate::error::Result;
use crate::linear::Linear;
use crate::nn::norm::LayerNorm;
use crate::nn::{dense_tensors, sized, Scratch};
use crate::ops::Activation;
use crate::quantization::Int8Layer;
use crate::weights::TensorMap;

/// HF `BertPooler`: dense + tanh on the first token of each sequence.
#[derive(Debug, Clone)]
pub struct Pooler {
    dense: Linear,
}

impl Pooler {
    pub fn load(tensors: &mut TensorMap, config: &EncoderConfig) -> Result<Self> {
        let hidden = config.hidden_size;
        let name = BERT.pooler.unwrap_or("pooler.dense");
        Ok(Pooler {
            dense: Linear::load(tensors, name, hidden, hidden)?,
        })
    }

    /// (sequences, H) from the first token of each span of `hidden (N, H)`.
    pub fn forward(&self, hidden: &[f32], spans: &[Span]) -> Vec<f32> {
        let size = self.dense.in_features();
        let first_tokens: Vec<f32> = spans
            .iter()
            .flat_map(|span| {
                hidden[span.start * size..(span.start + 1) * size]
                    .iter()
                    .copied()
            })
            .collect();
        let mut pooled = vec![0.0; spans.len() * self.dense.out_features()];
        self.dense.forward(
            &first_tokens,
            spans.len(),
            &mut pooled,
            Some(Activation::Tanh),
        );
        pooled
    }
}

/// Which of the LM head's two dense layers run in int8, with their activation bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LmHeadBits {
    pub transform: Option<Int8Layer>,
    pub decoder: Option<Int8Layer>,
}

/// HF `BertOnlyMLMHead`: `logits = LayerNorm(act(h W_t^T + b_t)) W_e^T + b`, `W_e` the
/// decoder matrix `(vocab, H)` (tied to the word embeddings: the caller passes them under
/// the decoder's name when a checkpoint leaves it out).
#[derive(Debug, Clone)]
pub struct LmHead {
    transform: Dense,
    activation: Activation,
    norm: LayerNorm,
    decoder: Dense,
    hidden_size: usize,
    vocab_size: usize,
}

impl LmHead {
    /// The tensors it takes: `{decoder}.bias` is what checkpoints store as `{bias}`.
    pub fn expected_tensors(
        names: &LmHeadNames,
        config: &EncoderConfig,
        bits: LmHeadBits,
    ) -> Vec<(String, Vec<usize>)> {
        let (hidden, vocab) = (config.hidden_size, config.vocab_size);
        let mut tensors = dense_tensors(names.transform, hidden, hidden, bits.transform);
        tensors.extend(LayerNorm::expected_tensors(names.norm, hidden));
        tensors.extend(dense_tensors(names.decoder, hidden, vocab, bits.decoder));
        tensors
    }

    pub fn load(
        tensors: &mut TensorMap,
        names: &LmHeadNames,
        config: &EncoderConfig,
        bits: LmHeadBits,
    ) -> Result<Self> {
        let (hidden, vocab) = (config.hidden_size, config.vocab_size);
        let transform =
            Dense::load_stacked(tensors, &[names.transform], hidden, hidden, bits.transform)?;
        let norm = LayerNorm::load(tensors, names.norm, hidden, config.layer_norm_eps)?;
        let decoder = Dense::load_stacked(tensors, &[names.decoder], hidden, vocab, bits.decoder)?;
        Ok(LmHead {
            transform,
            activation: config.hidden_act,
            norm,
            decoder,
            hidden_size: hidden,
            vocab_size: vocab,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// `logits (rows, vocab)` of `hidden (rows, H)`.
    pub fn forward(&self, hidden: &[f32], rows: usize, scratch: &mut Scratch) -> Vec<f32> {
        let transformed = sized(&mut scratch.attention_out, rows * self.hidden_size);
        self.transform.forward(
            hidden,
            rows,
            transformed,
            Some(self.activation),
            &mut scratch.quantized,
        );
        self.norm.forward(transformed);
        let mut logits = vec![0.0f32; rows * self.vocab_size];
        self.decoder
            .forward(transformed, rows, &mut logits, None, &mut scratch.quantized);
        logits
    }
}
