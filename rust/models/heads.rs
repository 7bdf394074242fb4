//! Heads over a model's hidden states: the pooler (HF `BertPooler`).

use super::families::BERT;
use crate::attention::Span;
use crate::config::EncoderConfig;
use crate::error::Result;
use crate::linear::Linear;
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
        self.dense
            .forward(&first_tokens, spans.len(), &mut pooled, None);
        pooled.iter_mut().for_each(|value| *value = value.tanh());
        pooled
    }
}
