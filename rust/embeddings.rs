//! BERT embeddings: word + token type + position, then LayerNorm.
//! Mirrors HF `BertEmbeddings`; positions are learned ("absolute") or the
//! fixed sinusoidal encoding of "Attention Is All You Need".

use rayon::prelude::*;

use crate::config::{EncoderConfig, PositionEmbedding};
use crate::error::Result;
use crate::ops::layer_norm;
use crate::quantization::Quantization;
use crate::weights::TensorMap;

/// The word embedding table: float32, or int8 per row with a scale per row
/// (a row is dequantized as it is looked up: `value as f32 * scale`).
#[derive(Debug, Clone)]
enum WordTable {
    F32(Vec<f32>),
    I8 { values: Vec<i8>, scales: Vec<f32> },
}

const WORD: &str = "embeddings.word_embeddings.weight";
const WORD_SCALE: &str = "embeddings.word_embeddings.weight_scale";

/// The sinusoidal table `(num_positions, dim)`: `sin` at even columns, `cos`
/// at odd ones, angle `pos / 10000^(2 * (j / 2) / dim)`, computed in f64 as
/// HF `create_sinusoidal_embeddings` does, then rounded to f32.
pub fn sinusoidal_table(num_positions: usize, dim: usize) -> Vec<f32> {
    let mut table = vec![0.0f32; num_positions * dim];
    for (position, row) in table.chunks_exact_mut(dim.max(1)).enumerate() {
        for (column, value) in row.iter_mut().enumerate() {
            let exponent = (2 * (column / 2)) as f64 / dim as f64;
            let angle = position as f64 / 10_000f64.powf(exponent);
            *value = if column % 2 == 0 {
                angle.sin()
            } else {
                angle.cos()
            } as f32;
        }
    }
    table
}

#[derive(Debug, Clone)]
pub struct Embeddings {
    /// (vocab, H)
    word: WordTable,
    /// (max_positions, H): learned, or the sinusoidal table.
    position: Vec<f32>,
    /// (type_vocab, H); empty when the model has no token types.
    token_type: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    hidden_size: usize,
    eps: f64,
}

impl Embeddings {
    /// Names and shapes this module takes (without the model prefix).
    pub fn expected_tensors(
        config: &EncoderConfig,
        quantization: &Quantization,
    ) -> Vec<(String, Vec<usize>)> {
        let hidden = config.hidden_size;
        let mut names = vec![(WORD.to_owned(), vec![config.vocab_size, hidden])];
        if quantization.word_embeddings() {
            names.push((WORD_SCALE.to_owned(), vec![config.vocab_size]));
        }
        if config.position_embedding_type == PositionEmbedding::Absolute {
            names.push((
                "embeddings.position_embeddings.weight".to_owned(),
                vec![config.max_position_embeddings, hidden],
            ));
        }
        if config.type_vocab_size > 0 {
            names.push((
                "embeddings.token_type_embeddings.weight".to_owned(),
                vec![config.type_vocab_size, hidden],
            ));
        }
        names.push(("embeddings.LayerNorm.weight".to_owned(), vec![hidden]));
        names.push(("embeddings.LayerNorm.bias".to_owned(), vec![hidden]));
        names
    }

    pub fn load(
        tensors: &mut TensorMap,
        config: &EncoderConfig,
        quantization: &Quantization,
    ) -> Result<Self> {
        let (hidden, vocab) = (config.hidden_size, config.vocab_size);
        let word = if quantization.word_embeddings() {
            let values = tensors.take_i8(WORD, &[vocab, hidden])?;
            let scales = tensors.take_scales(WORD_SCALE, vocab)?;
            WordTable::I8 { values, scales }
        } else {
            WordTable::F32(tensors.take(WORD, &[vocab, hidden])?)
        };
        let position = match config.position_embedding_type {
            PositionEmbedding::Absolute => tensors.take(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, hidden],
            )?,
            PositionEmbedding::Sinusoidal => {
                sinusoidal_table(config.max_position_embeddings, hidden)
            }
        };
        let token_type = if config.type_vocab_size > 0 {
            tensors.take(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, hidden],
            )?
        } else {
            Vec::new()
        };
        Ok(Embeddings {
            word,
            position,
            token_type,
            gamma: tensors.take("embeddings.LayerNorm.weight", &[hidden])?,
            beta: tensors.take("embeddings.LayerNorm.bias", &[hidden])?,
            hidden_size: hidden,
            eps: config.layer_norm_eps,
        })
    }

    /// `out (N, H)` for already validated `input_ids`, `token_type_ids` and
    /// `positions` (N each).
    pub fn forward(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        positions: &[usize],
        out: &mut [f32],
    ) {
        let hidden = self.hidden_size;
        out.par_chunks_mut(hidden)
            .enumerate()
            .for_each(|(token, row)| {
                let id = input_ids[token] as usize;
                let word_start = id * hidden;
                match &self.word {
                    WordTable::F32(word) => {
                        row.copy_from_slice(&word[word_start..word_start + hidden]);
                    }
                    WordTable::I8 { values, scales } => {
                        let values = &values[word_start..word_start + hidden];
                        for (value, &q) in row.iter_mut().zip(values) {
                            *value = q as f32 * scales[id];
                        }
                    }
                }
                if !self.token_type.is_empty() {
                    let type_start = token_type_ids[token] as usize * hidden;
                    let types = &self.token_type[type_start..type_start + hidden];
                    for (value, &t) in row.iter_mut().zip(types) {
                        *value += t;
                    }
                }
                let position_start = positions[token] * hidden;
                let positions = &self.position[position_start..position_start + hidden];
                for (value, &p) in row.iter_mut().zip(positions) {
                    *value += p;
                }
            });
        layer_norm(out, &self.gamma, &self.beta, self.eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoidal_table_has_sin_at_even_and_cos_at_odd_columns() {
        let table = sinusoidal_table(4, 6);
        assert_eq!(&table[..6], &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        let position: f64 = 3.0;
        let expected = (position / 10_000f64.powf(2.0 / 6.0)).cos() as f32;
        assert_eq!(table[3 * 6 + 3], expected);
        assert_eq!(
            table[3 * 6 + 4],
            (position / 10_000f64.powf(4.0 / 6.0)).sin() as f32
        );
    }
}
