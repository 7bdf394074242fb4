//! BERT embeddings: word + token type + position, then LayerNorm.
//! Mirrors HF `BertEmbeddings`; positions are learned ("absolute") or the
//! fixed sinusoidal encoding of "Attention Is All You Need". Tables narrower than
//! the hidden size (ELECTRA's `embedding_size`) are followed by the family's
//! `embeddings_project`, as in HF `ElectraModel`.

use rayon::prelude::*;

use crate::config::{EncoderConfig, PositionEmbedding};
use crate::error::Result;
use crate::linear::Linear;
use crate::models::families::{BERT, ELECTRA};
use crate::nn::dense_tensors;
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

/// The names of the tables, the LayerNorm and the projection.
struct Names {
    word: String,
    word_scale: String,
    position: String,
    token_type: String,
    norm: &'static str,
    project: &'static str,
}

fn names() -> Names {
    let names = &BERT.embeddings;
    Names {
        word: format!("{}.weight", names.word),
        word_scale: format!("{}.weight_scale", names.word),
        position: format!("{}.weight", names.position),
        token_type: format!("{}.weight", names.token_type),
        norm: names.norm,
        project: ELECTRA.embeddings_project.unwrap_or("embeddings_project"),
    }
}

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
    /// (vocab, E)
    word: WordTable,
    /// (max_positions, E): learned, or the sinusoidal table.
    position: Vec<f32>,
    /// (type_vocab, E); empty when the model has no token types.
    token_type: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    /// E: the width of the tables.
    embedding_size: usize,
    eps: f64,
    /// E -> H when E differs from the hidden size (ELECTRA's `embeddings_project`).
    project: Option<Linear>,
}

impl Embeddings {
    /// Names and shapes this module takes (without the model prefix).
    pub fn expected_tensors(
        config: &EncoderConfig,
        quantization: &Quantization,
    ) -> Vec<(String, Vec<usize>)> {
        let width = config.embedding_size;
        let all = names();
        let mut names = vec![(all.word, vec![config.vocab_size, width])];
        if quantization.word_embeddings() {
            names.push((all.word_scale, vec![config.vocab_size]));
        }
        if config.position_embedding_type == PositionEmbedding::Absolute {
            names.push((all.position, vec![config.max_position_embeddings, width]));
        }
        if config.type_vocab_size > 0 {
            names.push((all.token_type, vec![config.type_vocab_size, width]));
        }
        names.push((format!("{}.weight", all.norm), vec![width]));
        names.push((format!("{}.bias", all.norm), vec![width]));
        if width != config.hidden_size {
            names.extend(dense_tensors(all.project, width, config.hidden_size, None));
        }
        names
    }

    pub fn load(
        tensors: &mut TensorMap,
        config: &EncoderConfig,
        quantization: &Quantization,
    ) -> Result<Self> {
        let (width, vocab) = (config.embedding_size, config.vocab_size);
        let names = names();
        let word = if quantization.word_embeddings() {
            let values = tensors.take_i8(&names.word, &[vocab, width])?;
            let scales = tensors.take_scales(&names.word_scale, vocab)?;
            WordTable::I8 { values, scales }
        } else {
            WordTable::F32(tensors.take(&names.word, &[vocab, width])?)
        };
        let position = match config.position_embedding_type {
            PositionEmbedding::Absolute => {
                tensors.take(&names.position, &[config.max_position_embeddings, width])?
            }
            PositionEmbedding::Sinusoidal => {
                sinusoidal_table(config.max_position_embeddings, width)
            }
        };
        let token_type = if config.type_vocab_size > 0 {
            tensors.take(&names.token_type, &[config.type_vocab_size, width])?
        } else {
            Vec::new()
        };
        let project = if width == config.hidden_size {
            None
        } else {
            Some(Linear::load(
                tensors,
                names.project,
                width,
                config.hidden_size,
            )?)
        };
        Ok(Embeddings {
            word,
            position,
            token_type,
            gamma: tensors.take(&format!("{}.weight", names.norm), &[width])?,
            beta: tensors.take(&format!("{}.bias", names.norm), &[width])?,
            embedding_size: width,
            eps: config.layer_norm_eps,
            project,
        })
    }

    /// `out (N, H)` for already validated `input_ids`, `token_type_ids` and
    /// `positions` (N each); token types are all 0 when `token_type_ids` is empty.
    pub fn forward(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        positions: &[usize],
        out: &mut [f32],
    ) {
        match &self.project {
            None => self.lookup(input_ids, token_type_ids, positions, out),
            Some(project) => {
                let mut narrow = vec![0.0f32; input_ids.len() * self.embedding_size];
                self.lookup(input_ids, token_type_ids, positions, &mut narrow);
                project.forward(&narrow, input_ids.len(), out, None);
            }
        }
    }

    /// `out (N, E)`: the tables summed, then LayerNorm.
    fn lookup(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        positions: &[usize],
        out: &mut [f32],
    ) {
        let hidden = self.embedding_size;
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
                    let token_type = token_type_ids.get(token).copied().unwrap_or(0);
                    let type_start = token_type as usize * hidden;
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
