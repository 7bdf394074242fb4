//! The BERT decoder of an `EncoderDecoderModel`: HF `BertLMHeadModel` with `is_decoder` and
//! `add_cross_attention` (`models/bert/modeling_bert.py`). Each layer runs causal
//! self-attention over a key/value cache, cross-attention over the encoder's output (its
//! keys and values computed once per input, [`Decoder::memory`]), and the feed-forward
//! block; the LM head turns the last hidden states into logits. Names come from
//! [`BERT_DECODER`] in the family table.

use std::sync::Arc;

pub use super::decoder_config::DecoderConfig;
use super::decoder_int8::DecoderQuantization;
pub use super::decoder_state::{DecoderState, Memory};
use super::families::BERT_DECODER;
use super::heads::LmHead;
use crate::attention::{mask_bias, prefix_spans, AttentionShape};
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};
use crate::linear::Linear;
use crate::nn::causal_attention::causal_attention;
use crate::nn::cross_attention::{CrossAttention, SourceKeys};
use crate::nn::feed_forward::FeedForward;
use crate::nn::kv_cache::KvCache;
use crate::nn::self_attention::AttentionBlock;
use crate::nn::{dense_tensors, Scratch};
use crate::quantization::Quantization;
use crate::threads;
use crate::weights::TensorMap;

/// HF `BertLayer` of a decoder: causal self-attention, cross-attention, feed-forward.
#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attention: AttentionBlock,
    cross_attention: CrossAttention,
    feed_forward: FeedForward,
}
/// HF `BertLMHeadModel` as a decoder, with the projection of the encoder's output of an
/// `EncoderDecoderModel` whose two hidden sizes differ.
#[derive(Debug, Clone)]
pub struct Decoder {
    config: DecoderConfig,
    embeddings: Embeddings,
    layers: Vec<DecoderLayer>,
    lm_head: LmHead,
    /// `enc_to_dec_proj`: encoder width -> decoder width.
    projection: Option<Linear>,
    memory_size: usize,
}

impl Decoder {
    fn layer_prefix(index: usize) -> String {
        format!("{}.{index}", BERT_DECODER.body.layers)
    }

    /// Every tensor the decoder takes (names without `decoder.bert.` / `decoder.`), for an
    /// encoder of width `memory_size`.
    pub fn expected_tensors(
        config: &DecoderConfig,
        memory_size: usize,
        quantization: &DecoderQuantization,
    ) -> Vec<(String, Vec<usize>)> {
        let model = &config.model;
        let family = &BERT_DECODER;
        let mut names = Embeddings::expected_tensors(model, &Quantization::default());
        let int8 = |module: &str| quantization.int8(module);
        for index in 0..model.num_hidden_layers {
            let prefix = Self::layer_prefix(index);
            let layer = &family.body.layer;
            names.extend(AttentionBlock::expected_tensors(
                &prefix, layer, model, &int8,
            ));
            names.extend(CrossAttention::expected_tensors(
                &prefix,
                &family.cross_attention,
                model,
                &int8,
            ));
            names.extend(FeedForward::expected_tensors(&prefix, layer, model, &int8));
        }
        names.extend(LmHead::expected_tensors(
            &family.lm_head,
            model,
            quantization.lm_head(),
        ));
        if memory_size != model.hidden_size {
            names.extend(dense_tensors(
                family.encoder_projection,
                memory_size,
                model.hidden_size,
                None,
            ));
        }
        names
    }

    /// Build from tensors named as [`Decoder::expected_tensors`] lists them; a tensor left
    /// over is an error.
    pub fn load(
        config: DecoderConfig,
        mut tensors: TensorMap,
        memory_size: usize,
        quantization: &DecoderQuantization,
    ) -> Result<Self> {
        if memory_size == 0 {
            return Err(Error::config("encoder", "the encoder's hidden size is 0"));
        }
        let model = &config.model;
        let family = &BERT_DECODER;
        let embeddings = Embeddings::load(&mut tensors, model, &Quantization::default())?;
        let int8 = |module: &str| quantization.int8(module);
        let layers = (0..model.num_hidden_layers)
            .map(|index| {
                let prefix = Self::layer_prefix(index);
                let layer = &family.body.layer;
                Ok(DecoderLayer {
                    self_attention: AttentionBlock::load(
                        &mut tensors,
                        &prefix,
                        layer,
                        model,
                        &int8,
                    )?,
                    cross_attention: CrossAttention::load(
                        &mut tensors,
                        &prefix,
                        &family.cross_attention,
                        model,
                        &int8,
                    )?,
                    feed_forward: FeedForward::load(&mut tensors, &prefix, layer, model, &int8)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = LmHead::load(&mut tensors, &family.lm_head, model, quantization.lm_head())?;
        let projection = if memory_size == model.hidden_size {
            None
        } else {
            Some(Linear::load(
                &mut tensors,
                family.encoder_projection,
                memory_size,
                model.hidden_size,
            )?)
        };
        if let Some(extra) = tensors.names().into_iter().next() {
            return Err(Error::weights(extra, "unexpected tensor for this decoder"));
        }
        Ok(Decoder {
            config,
            embeddings,
            layers,
            lm_head,
            projection,
            memory_size,
        })
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    pub fn vocab_size(&self) -> usize {
        self.config.model.vocab_size
    }

    fn shape(&self) -> AttentionShape {
        AttentionShape {
            num_heads: self.config.model.num_attention_heads,
            head_size: self.config.model.head_size(),
        }
    }

    /// The cross-attention keys and values of the encoder's output `hidden (batch, len,
    /// memory_size)` under its `attention_mask (batch, len)`: once per input.
    pub fn memory(
        &self,
        hidden: &[f32],
        attention_mask: &[i64],
        batch: usize,
        len: usize,
    ) -> Result<Memory> {
        let tokens = batch
            .checked_mul(len)
            .ok_or_else(|| Error::input("batch x source length overflows"))?;
        if batch == 0 || len == 0 {
            return Err(Error::input(
                "the source batch is empty (no rows or no tokens)",
            ));
        }
        if hidden.len() != tokens * self.memory_size || attention_mask.len() != tokens {
            return Err(Error::input(format!(
                "the encoder output must be ({batch}, {len}, {}) and its mask ({batch}, {len})",
                self.memory_size
            )));
        }
        if let Some(index) = attention_mask.iter().position(|&m| m != 0 && m != 1) {
            return Err(Error::input(format!(
                "attention_mask[{}, {}] = {} (a mask holds 0 or 1)",
                index / len,
                index % len,
                attention_mask[index]
            )));
        }
        // Prefix masks: attend to the unpadded keys only. Any other mask: HF's bias.
        let sources: Vec<SourceKeys> = match prefix_spans(attention_mask, batch, len) {
            Some(spans) => spans
                .iter()
                .map(|span| SourceKeys {
                    keys: span.keys,
                    bias: None,
                })
                .collect(),
            None => attention_mask
                .chunks_exact(len)
                .map(|row| SourceKeys {
                    keys: len,
                    bias: Some(mask_bias(row)),
                })
                .collect(),
        };
        threads::run(|| {
            let mut scratch = Scratch::default();
            let projected;
            let memory = match &self.projection {
                None => hidden,
                Some(projection) => {
                    let mut out = vec![0.0f32; tokens * self.config.model.hidden_size];
                    projection.forward(hidden, tokens, &mut out, None);
                    projected = out;
                    &projected
                }
            };
            let layers = self
                .layers
                .iter()
                .map(|layer| {
                    layer
                        .cross_attention
                        .memory(memory, batch, len, &mut scratch)
                })
                .collect();
            Memory { layers, sources }
        })
    }

    /// A generation over `memory` with `beams` rows per source and room for `capacity`
    /// tokens per row.
    pub fn start(
        &self,
        memory: Arc<Memory>,
        beams: usize,
        capacity: usize,
    ) -> Result<DecoderState> {
        if beams == 0 {
            return Err(Error::input("num_beams must be at least 1"));
        }
        let limit = self.config.model.max_position_embeddings;
        if capacity > limit {
            return Err(Error::input(format!(
                "{capacity} decoder positions were asked for; the decoder has {limit} (max_position_embeddings)"
            )));
        }
        let rows = memory
            .batch()
            .checked_mul(beams)
            .ok_or_else(|| Error::input("batch x beams overflows"))?;
        let cache = KvCache::new(self.layers.len(), rows, self.shape(), capacity)?;
        Ok(DecoderState {
            row_sources: (0..rows).map(|row| row / beams).collect(),
            memory,
            cache,
            beams,
        })
    }

    /// Feed `tokens` more tokens of every row (`ids (rows, tokens)`), at positions
    /// `state.len()..`; returns the logits `(rows, vocab)` of each row's last token, or of
    /// every token `(rows * tokens, vocab)` with `all_positions`. `mask (rows, len + tokens)`:
    /// the padding of the decoder's inputs (HF `decoder_attention_mask`), ones if `None`.
    pub fn step(
        &self,
        state: &mut DecoderState,
        ids: &[i64],
        tokens: usize,
        mask: Option<&[i64]>,
        all_positions: bool,
    ) -> Result<Vec<f32>> {
        let rows = state.rows();
        let model = &self.config.model;
        let past = state.len();
        let total = past + tokens;
        if tokens == 0 || ids.len() != rows * tokens {
            return Err(Error::input(format!(
                "decoder_input_ids must hold {rows} rows of {tokens} > 0 tokens, got {} values",
                ids.len()
            )));
        }
        if total > model.max_position_embeddings {
            return Err(Error::input(format!(
                "the decoder's input would be {total} tokens long, more than its max_position_embeddings {}",
                model.max_position_embeddings
            )));
        }
        if let Some(index) = ids
            .iter()
            .position(|&id| id < 0 || id as u64 >= model.vocab_size as u64)
        {
            return Err(Error::input(format!(
                "decoder_input_ids[{}, {}] = {} is outside [0, {})",
                index / tokens,
                past + index % tokens,
                ids[index],
                model.vocab_size
            )));
        }
        let bias = match mask {
            None => None,
            Some(mask) if mask.len() != rows * total => {
                return Err(Error::input(format!(
                    "decoder_attention_mask must be ({rows}, {total}), got {} values",
                    mask.len()
                )))
            }
            Some(mask) if mask.iter().any(|&m| m != 0 && m != 1) => {
                return Err(Error::input(
                    "decoder_attention_mask holds values other than 0 and 1",
                ))
            }
            Some(mask) if mask.iter().all(|&m| m == 1) => None,
            Some(mask) => Some(mask_bias(mask)),
        };
        let positions: Vec<usize> = (0..rows).flat_map(|_| past..total).collect();
        let hidden = threads::run(|| self.run(state, ids, tokens, &positions, bias.as_deref()))??;
        let hidden_size = model.hidden_size;
        threads::run(|| {
            let mut scratch = Scratch::default();
            if all_positions {
                self.lm_head.forward(&hidden, rows * tokens, &mut scratch)
            } else {
                let last: Vec<f32> = hidden
                    .chunks_exact(tokens * hidden_size)
                    .flat_map(|row| row[(tokens - 1) * hidden_size..].iter().copied())
                    .collect();
                self.lm_head.forward(&last, rows, &mut scratch)
            }
        })
    }

    /// Embeddings and every layer on the current pool; the cache grows by `tokens`.
    fn run(
        &self,
        state: &mut DecoderState,
        ids: &[i64],
        tokens: usize,
        positions: &[usize],
        bias: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        let rows = state.rows();
        let shape = self.shape();
        let hidden_size = shape.hidden_size();
        let count = rows * tokens;
        let past = state.len();
        let mut hidden = vec![0.0f32; count * hidden_size];
        self.embeddings.forward(ids, &[], positions, &mut hidden);
        let mut attended = vec![0.0f32; hidden.len()];
        let mut crossed = vec![0.0f32; hidden.len()];
        let mut scratch = Scratch::default();
        let DecoderState {
            memory,
            cache,
            row_sources,
            ..
        } = state;
        for (index, layer) in self.layers.iter().enumerate() {
            let mut stored = Ok(());
            layer.self_attention.forward(
                &hidden,
                count,
                &mut attended,
                &mut scratch,
                |qkv, context| {
                    stored = cache.store(index, qkv, tokens);
                    if stored.is_ok() {
                        causal_attention(
                            qkv, rows, tokens, cache, index, past, bias, shape, context,
                        );
                    }
                },
            );
            stored?;
            layer.cross_attention.forward(
                &attended,
                rows,
                tokens,
                &memory.layers[index],
                &memory.sources,
                row_sources,
                &mut crossed,
                &mut scratch,
            );
            layer
                .feed_forward
                .forward(&crossed, count, &mut hidden, &mut scratch);
        }
        cache.advance(tokens);
        Ok(hidden)
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
