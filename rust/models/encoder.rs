//! The BERT encoder: embeddings, N layers of attention + feed-forward with
//! residuals and LayerNorm, and the optional pooler. One struct per HF module
//! (`BertLayer`, `BertModel` in transformers' `models/bert/modeling_bert.py`);
//! weight names are HF BERT's, from [`super::families`] (DistilBERT and ELECTRA
//! checkpoints are translated to them).

use super::families::{BERT, BERT_LAYER};
use super::heads::Pooler;
use crate::attention::{
    mask_bias, multi_head_attention, packed_spans, padded_spans, prefix_spans, AttentionShape, Span,
};
use crate::config::EncoderConfig;
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};
use crate::nn::feed_forward::FeedForward;
use crate::nn::self_attention::AttentionBlock;
use crate::nn::{dense_tensors, Scratch};
use crate::quantization::Quantization;
use crate::threads;
use crate::weights::TensorMap;

/// HF `BertLayer`: self-attention block, then feed-forward block; the modules are
/// named by [`BERT_LAYER`] (other families are translated to these names at load).
#[derive(Debug, Clone)]
pub struct Layer {
    attention: AttentionBlock,
    feed_forward: FeedForward,
}

impl Layer {
    fn prefix(index: usize) -> String {
        format!("{}.{index}", BERT.layers)
    }

    fn expected_tensors(
        config: &EncoderConfig,
        index: usize,
        quantization: &Quantization,
    ) -> Vec<(String, Vec<usize>)> {
        let prefix = Self::prefix(index);
        let int8 = |module: &str| quantization.int8(module);
        let mut names = AttentionBlock::expected_tensors(&prefix, &BERT_LAYER, config, &int8);
        names.extend(FeedForward::expected_tensors(
            &prefix,
            &BERT_LAYER,
            config,
            &int8,
        ));
        names
    }

    fn load(
        tensors: &mut TensorMap,
        config: &EncoderConfig,
        index: usize,
        quantization: &Quantization,
    ) -> Result<Self> {
        let prefix = Self::prefix(index);
        let int8 = |module: &str| quantization.int8(module);
        Ok(Layer {
            attention: AttentionBlock::load(tensors, &prefix, &BERT_LAYER, config, &int8)?,
            feed_forward: FeedForward::load(tensors, &prefix, &BERT_LAYER, config, &int8)?,
        })
    }

    /// `hidden (N, H)` in place; `spans` are the sequences among the N rows.
    fn forward(
        &self,
        hidden: &mut [f32],
        spans: &[Span],
        bias: Option<&[f32]>,
        shape: AttentionShape,
        attention_out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let rows = hidden.len() / shape.hidden_size();
        self.attention
            .forward(hidden, rows, attention_out, scratch, |qkv, context| {
                multi_head_attention(qkv, spans, bias, shape, context)
            });
        self.feed_forward
            .forward(attention_out, rows, hidden, scratch);
    }
}

/// What a forward pass returns.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderOutput {
    /// (B, T, H)
    pub last_hidden_state: Vec<f32>,
    /// (B, H), when the model has a pooler.
    pub pooler_output: Option<Vec<f32>>,
    /// The embeddings output, then each layer's output, when asked.
    pub hidden_states: Option<Vec<Vec<f32>>>,
}

/// HF `BertModel`.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: EncoderConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Pooler>,
}

/// Every tensor the encoder needs, by HF name, with its shape.
pub fn expected_tensors(
    config: &EncoderConfig,
    with_pooler: bool,
    quantization: &Quantization,
) -> Vec<(String, Vec<usize>)> {
    let mut names = Embeddings::expected_tensors(config, quantization);
    for index in 0..config.num_hidden_layers {
        names.extend(Layer::expected_tensors(config, index, quantization));
    }
    if let (true, Some(pooler)) = (with_pooler, BERT.pooler) {
        let hidden = config.hidden_size;
        names.extend(dense_tensors(pooler, hidden, hidden, None));
    }
    names
}

impl Encoder {
    /// Build from HF-named tensors. Tensors left over after loading (inside
    /// the encoder's namespaces) are an error: they mean a different model.
    /// `quantization` names the dense layers stored in int8 (empty: float32).
    pub fn load(
        config: EncoderConfig,
        mut tensors: TensorMap,
        with_pooler: bool,
        quantization: &Quantization,
    ) -> Result<Self> {
        // An unusable OXIFORMER_SIMD stops here, before any kernel runs.
        crate::cpu::paths()?;
        let embeddings = Embeddings::load(&mut tensors, &config, quantization)?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| Layer::load(&mut tensors, &config, index, quantization))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if with_pooler {
            Some(Pooler::load(&mut tensors, &config)?)
        } else {
            None
        };
        if let Some(extra) = tensors.names().into_iter().next() {
            return Err(Error::weights(
                extra,
                "unexpected tensor for this configuration",
            ));
        }
        Ok(Encoder {
            config,
            embeddings,
            layers,
            pooler,
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Ids and token types in range (shared by the padded and packed paths).
    fn validate_tokens(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        row_len: usize,
    ) -> Result<()> {
        let config = &self.config;
        if token_type_ids.len() != input_ids.len() {
            return Err(Error::input(format!(
                "token_type_ids has {} values, input_ids {}",
                token_type_ids.len(),
                input_ids.len()
            )));
        }
        check_range(
            "input_ids",
            input_ids,
            config.vocab_size,
            "vocab_size",
            row_len,
        )?;
        check_range(
            "token_type_ids",
            token_type_ids,
            config.type_vocab_size.max(1),
            "type_vocab_size",
            row_len,
        )
    }

    fn check_length(&self, len: usize) -> Result<()> {
        let limit = self.config.max_position_embeddings;
        if len > limit {
            return Err(Error::input(format!(
                "sequence length {len} exceeds max_position_embeddings {limit}"
            )));
        }
        Ok(())
    }

    /// Run the encoder on a padded batch: (batch, seq_len) inputs, HF's
    /// semantics for the mask (padded rows are computed and returned too).
    pub fn forward(
        &self,
        input_ids: &[i64],
        attention_mask: &[i64],
        token_type_ids: &[i64],
        batch: usize,
        seq_len: usize,
        output_hidden_states: bool,
    ) -> Result<EncoderOutput> {
        let tokens = batch
            .checked_mul(seq_len)
            .ok_or_else(|| Error::input("batch x sequence length overflows"))?;
        if input_ids.len() != tokens || attention_mask.len() != tokens {
            return Err(Error::input(format!(
                "input_ids and attention_mask must hold batch {batch} x sequence {seq_len} values"
            )));
        }
        if seq_len == 0 && batch > 0 {
            return Err(Error::input("the sequences are empty (sequence length 0)"));
        }
        self.check_length(seq_len)?;
        self.validate_tokens(input_ids, token_type_ids, seq_len)?;
        check_range(
            "attention_mask",
            attention_mask,
            2,
            "a mask holds 0 or 1",
            seq_len,
        )?;
        let positions: Vec<usize> = (0..tokens).map(|token| token % seq_len.max(1)).collect();
        // Masks of the usual shape (each row ones, then zeros) skip the padded keys;
        // any other mask is applied as HF's additive bias.
        let (spans, bias) = match prefix_spans(attention_mask, batch, seq_len) {
            Some(spans) => (spans, None),
            None => (
                padded_spans(batch, seq_len),
                Some(mask_bias(attention_mask)),
            ),
        };
        threads::run(|| {
            self.run(
                input_ids,
                token_type_ids,
                &positions,
                &spans,
                bias.as_deref(),
                output_hidden_states,
            )
        })
    }

    /// Run the encoder on packed sequences: the tokens of every sequence back
    /// to back (`lengths` gives each sequence's length), no padding and no
    /// mask. Attention runs per sequence; everything else on all tokens at
    /// once. `last_hidden_state` is (sum(lengths), H); `pooler_output`, one
    /// row per sequence. Equals the padded path on the unpadded positions.
    pub fn forward_packed(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        lengths: &[usize],
        output_hidden_states: bool,
    ) -> Result<EncoderOutput> {
        let (positions, spans) = self.packed_layout(input_ids, token_type_ids, lengths)?;
        threads::run(|| {
            self.run(
                input_ids,
                token_type_ids,
                &positions,
                &spans,
                None,
                output_hidden_states,
            )
        })
    }

    /// Calibration for int8: run packed sequences (as [`Encoder::forward_packed`]) and return,
    /// for each layer, the largest |value| of each input channel of its dense layers, in the
    /// order query (shared with key and value), attention.output.dense, intermediate.dense,
    /// output.dense.
    pub fn input_peaks(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        lengths: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let (positions, spans) = self.packed_layout(input_ids, token_type_ids, lengths)?;
        let mut scratch = Scratch {
            peaks: Some(Vec::new()),
            ..Scratch::default()
        };
        threads::run(|| {
            let input = (input_ids, token_type_ids, positions.as_slice());
            self.run_with(input, &spans, None, false, &mut scratch);
        })?;
        Ok(scratch.peaks.unwrap_or_default())
    }

    /// The positions and spans of packed sequences of `lengths`, their inputs checked.
    fn packed_layout(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        lengths: &[usize],
    ) -> Result<(Vec<usize>, Vec<Span>)> {
        let mut total = 0usize;
        for (index, &len) in lengths.iter().enumerate() {
            if len == 0 {
                return Err(Error::input(format!("packed sequence {index} is empty")));
            }
            self.check_length(len)?;
            total = total
                .checked_add(len)
                .ok_or_else(|| Error::input("total length overflows"))?;
        }
        if input_ids.len() != total {
            return Err(Error::input(format!(
                "input_ids has {} tokens, the lengths add up to {total}",
                input_ids.len()
            )));
        }
        self.validate_tokens(input_ids, token_type_ids, 0)?;
        let positions: Vec<usize> = lengths.iter().flat_map(|&len| 0..len).collect();
        Ok((positions, packed_spans(lengths)))
    }

    /// Embeddings, every layer, the pooler: on the current pool, inputs valid.
    fn run(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        positions: &[usize],
        spans: &[Span],
        bias: Option<&[f32]>,
        output_hidden_states: bool,
    ) -> EncoderOutput {
        let input = (input_ids, token_type_ids, positions);
        let mut scratch = Scratch::default();
        self.run_with(input, spans, bias, output_hidden_states, &mut scratch)
    }

    /// [`Encoder::run`] with the caller's scratch buffers (which may record peaks).
    fn run_with(
        &self,
        (input_ids, token_type_ids, positions): (&[i64], &[i64], &[usize]),
        spans: &[Span],
        bias: Option<&[f32]>,
        output_hidden_states: bool,
        scratch: &mut Scratch,
    ) -> EncoderOutput {
        let config = &self.config;
        let tokens = input_ids.len();
        let mut hidden = vec![0.0f32; tokens * config.hidden_size];
        self.embeddings
            .forward(input_ids, token_type_ids, positions, &mut hidden);
        let mut hidden_states = output_hidden_states.then(|| vec![hidden.clone()]);
        let shape = AttentionShape {
            num_heads: config.num_attention_heads,
            head_size: config.head_size(),
        };
        let mut attention_out = vec![0.0f32; hidden.len()];
        for layer in &self.layers {
            layer.forward(&mut hidden, spans, bias, shape, &mut attention_out, scratch);
            if let Some(states) = hidden_states.as_mut() {
                states.push(hidden.clone());
            }
        }
        let pooler_output = self
            .pooler
            .as_ref()
            .map(|pooler| pooler.forward(&hidden, spans));
        EncoderOutput {
            last_hidden_state: hidden,
            pooler_output,
            hidden_states,
        }
    }
}

/// An error naming the first value of `values` outside `[0, limit)`; positions
/// are reported as (row, column) when `row_len > 0`, else as a flat index.
fn check_range(name: &str, values: &[i64], limit: usize, what: &str, row_len: usize) -> Result<()> {
    match values
        .iter()
        .position(|&v| v < 0 || v as u64 >= limit as u64)
    {
        None => Ok(()),
        Some(index) => {
            let at = match index.checked_div(row_len) {
                Some(row) => format!("[{row}, {}]", index % row_len),
                None => format!("[{index}]"),
            };
            Err(Error::input(format!(
                "{name}{at} = {} is outside [0, {limit}) ({what})",
                values[index]
            )))
        }
    }
}
