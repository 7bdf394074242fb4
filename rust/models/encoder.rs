//! The BERT encoder: embeddings, N layers of attention + feed-forward with
//! residuals and LayerNorm, and the optional pooler. One struct per HF module
//! (`BertLayer`, `BertModel` in transformers' `models/bert/modeling_bert.py`);
//! weight names are HF BERT's, from [`super::families`] (DistilBERT and ELECTRA
//! checkpoints are translated to them).

use super::families::{BERT, BERT_LAYER};
use super::heads::Pooler;
use crate::attention::{
    mask_bias, multi_head_attention, multi_head_attention_int8, packed_spans, padded_spans,
    prefix_spans, AttentionShape, Span,
};
use crate::config::EncoderConfig;
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};
use crate::nn::feed_forward::FeedForward;
use crate::nn::self_attention::AttentionBlock;
use crate::nn::{dense_tensors, Scratch, ScratchPool};
use crate::quantization::Quantization;
use crate::threads;
use crate::weights::TensorMap;

/// Most scratch memory one forward pass takes: a larger batch runs in chunks of whole
/// sequences that fit. The results are the same bits: every token row and every sequence is
/// computed on its own. 256 MiB is about 19,000 tokens of MiniLM, 9,700 of BERT-base (a batch
/// of 32x128 is 4,096).
pub const WORKSPACE_BYTES: usize = 256 << 20;

/// Most tokens an int8 model runs through its layers at a time (whole sequences; a longer one
/// runs alone): the activations of ~512 tokens stay in the CPU's caches from one product to the
/// next, where a whole 32x128 batch's go to memory. Measured on a Zen 4 (2026-12-04, 2
/// threads, same bits): MiniLM int8 32x128 5-7% faster, BERT-base int8 about 5%. fp32 models
/// gained nothing (their weights, 4x larger, are read again for every chunk) and keep
/// [`WORKSPACE_BYTES`] alone.
pub const INT8_CHUNK_TOKENS: usize = 512;

/// Bytes of scratch one token takes: the blocks' buffers (`nn::Scratch`: fused QKV, context,
/// the FFN's inner activations) and the attention block's output.
fn bytes_per_token(config: &EncoderConfig) -> usize {
    let values = 5 * config.hidden_size + config.intermediate_size;
    crate::memory::bytes_of::<f32>(values).max(1)
}

/// HF `BertLayer`: self-attention block, then feed-forward block; the modules are
/// named by [`BERT_LAYER`] (other families are translated to these names at load).
#[derive(Debug, Clone)]
pub struct Layer {
    attention: AttentionBlock,
    feed_forward: FeedForward,
    /// Attention's products in int8 (the model's `quantization_config` asks, and query, key
    /// and value are int8).
    int8_attention: bool,
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
            int8_attention: quantization.int8_attention(),
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
        let int8 = self.attention.int8_path().filter(|_| self.int8_attention);
        self.attention.forward(
            hidden,
            rows,
            attention_out,
            scratch,
            |qkv, context| match int8 {
                Some(path) => multi_head_attention_int8(path, qkv, spans, bias, shape, context),
                None => multi_head_attention(qkv, spans, bias, shape, context),
            },
        );
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
    scratch: ScratchPool,
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
            scratch: ScratchPool::default(),
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
        let mut positions = filled(tokens, 0usize, "the positions")?;
        for (token, position) in positions.iter_mut().enumerate() {
            *position = token % seq_len.max(1);
        }
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
                WORKSPACE_BYTES,
            )
        })?
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
                WORKSPACE_BYTES,
            )
        })?
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
            let run = (spans.as_slice(), None, false, WORKSPACE_BYTES);
            self.run_with(input, run, &mut scratch)
        })??;
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
        let mut positions = filled(total, 0usize, "the positions")?;
        let all = lengths.iter().flat_map(|&len| 0..len);
        for (position, value) in positions.iter_mut().zip(all) {
            *position = value;
        }
        Ok((positions, packed_spans(lengths)))
    }

    /// Embeddings, every layer, the pooler: on the current pool, inputs valid.
    /// `spans` cover the tokens in order; they run in chunks of whole spans
    /// whose scratch space fits in `workspace_bytes`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        input_ids: &[i64],
        token_type_ids: &[i64],
        positions: &[usize],
        spans: &[Span],
        bias: Option<&[f32]>,
        output_hidden_states: bool,
        workspace_bytes: usize,
    ) -> Result<EncoderOutput> {
        let input = (input_ids, token_type_ids, positions);
        let mut scratch = self.scratch.take();
        let run = (spans, bias, output_hidden_states, workspace_bytes);
        let output = self.run_with(input, run, &mut scratch);
        self.scratch.give(scratch);
        output
    }

    /// [`Encoder::run`] with the caller's scratch buffers (which may record peaks).
    fn run_with(
        &self,
        (input_ids, token_type_ids, positions): (&[i64], &[i64], &[usize]),
        (spans, bias, output_hidden_states, workspace_bytes): (
            &[Span],
            Option<&[f32]>,
            bool,
            usize,
        ),
        scratch: &mut Scratch,
    ) -> Result<EncoderOutput> {
        let config = &self.config;
        let hidden_size = config.hidden_size;
        let tokens = input_ids.len();
        let values = tokens
            .checked_mul(hidden_size)
            .ok_or_else(|| Error::input("the output size overflows"))?;
        let outputs = if output_hidden_states {
            self.layers.len() + 2
        } else {
            1
        };
        let output_error = || {
            let bytes = crate::memory::bytes_of::<f32>(values).saturating_mul(outputs);
            let states = if output_hidden_states {
                format!(" ({outputs} arrays with output_hidden_states)")
            } else {
                String::new()
            };
            Error::input(format!(
                "not enough memory for the output of {tokens} tokens: it needs {}{states}",
                crate::memory::human(bytes)
            ))
        };
        let mut hidden = crate::memory::try_filled(values, 0.0f32).ok_or_else(output_error)?;
        let mut hidden_states = if output_hidden_states {
            let states = (0..=self.layers.len())
                .map(|_| crate::memory::try_filled(values, 0.0f32).ok_or_else(output_error))
                .collect::<Result<Vec<_>>>()?;
            Some(states)
        } else {
            None
        };
        let shape = AttentionShape {
            num_heads: config.num_attention_heads,
            head_size: config.head_size(),
        };
        let mut budget = (workspace_bytes / bytes_per_token(config)).max(1);
        if self
            .layers
            .iter()
            .any(|layer| layer.attention.int8_path().is_some())
        {
            budget = budget.min(INT8_CHUNK_TOKENS);
        }
        let chunks = chunk_spans(spans, budget);
        let largest = chunks.iter().map(|chunk| chunk.tokens).max().unwrap_or(0);
        // Every scratch buffer reserved for the largest chunk now: the only allocations.
        scratch
            .try_reserve(largest, hidden_size, config.intermediate_size)
            .map_err(|_| scratch_error(config, largest))?;
        for chunk in &chunks {
            let rows = chunk.first_token..chunk.first_token + chunk.tokens;
            let values = rows.start * hidden_size..rows.end * hidden_size;
            let part = &mut hidden[values.clone()];
            self.embeddings.forward(
                &input_ids[rows.clone()],
                &token_type_ids[rows.clone()],
                &positions[rows.clone()],
                part,
            );
            if let Some(states) = hidden_states.as_mut() {
                states[0][values.clone()].copy_from_slice(part);
            }
            let local: Vec<Span> = spans[chunk.spans.clone()]
                .iter()
                .map(|span| Span {
                    start: span.start - chunk.first_token,
                    ..*span
                })
                .collect();
            let chunk_bias = bias.map(|bias| &bias[rows.clone()]);
            let mut attention_out = std::mem::take(&mut scratch.attention_out);
            attention_out.resize(part.len(), 0.0);
            for (index, layer) in self.layers.iter().enumerate() {
                layer.forward(part, &local, chunk_bias, shape, &mut attention_out, scratch);
                if let Some(states) = hidden_states.as_mut() {
                    states[index + 1][values.clone()].copy_from_slice(part);
                }
            }
            scratch.attention_out = attention_out;
        }
        let pooler_output = self
            .pooler
            .as_ref()
            .map(|pooler| pooler.forward(&hidden, spans));
        Ok(EncoderOutput {
            last_hidden_state: hidden,
            pooler_output,
            hidden_states,
        })
    }
}

/// The error for scratch space of `tokens` tokens that could not be reserved.
fn scratch_error(config: &EncoderConfig, tokens: usize) -> Error {
    let bytes = tokens.saturating_mul(bytes_per_token(config));
    Error::input(format!(
        "not enough memory for the encoder's scratch space: {tokens} tokens need {}",
        crate::memory::human(bytes)
    ))
}

/// Consecutive spans run together: `spans` (indices), their tokens from
/// `first_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    spans: std::ops::Range<usize>,
    first_token: usize,
    tokens: usize,
}

/// `spans` (back to back, in token order) cut into chunks of at most
/// `max_tokens` tokens, never inside a span (a longer span is a chunk alone).
fn chunk_spans(spans: &[Span], max_tokens: usize) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        match chunks.last_mut() {
            Some(chunk)
                if chunk.tokens + span.len <= max_tokens
                    && chunk.first_token + chunk.tokens == span.start =>
            {
                chunk.spans.end = index + 1;
                chunk.tokens += span.len;
            }
            _ => chunks.push(Chunk {
                spans: index..index + 1,
                first_token: span.start,
                tokens: span.len,
            }),
        }
    }
    chunks
}

/// `len` copies of `value`, or an error naming `what` and the bytes it needs.
fn filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    crate::memory::try_filled(len, value).ok_or_else(|| {
        Error::input(format!(
            "not enough memory for {what} of {len} tokens ({})",
            crate::memory::human(crate::memory::bytes_of::<T>(len))
        ))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::Tensor;

    /// A random 2-layer encoder with a pooler (a linear congruential generator:
    /// the same weights on every run).
    fn tiny_encoder() -> Result<Encoder> {
        let config = EncoderConfig::from_json(
            r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2,
                "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 16}"#,
            "tiny",
        )?;
        let quantization = Quantization::default();
        let mut seed = 1u32;
        let mut tensors = TensorMap::new();
        for (name, shape) in expected_tensors(&config, true, &quantization) {
            let values = (0..shape.iter().product::<usize>())
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect();
            tensors.insert(name.clone(), Tensor::new(&name, shape, values)?);
        }
        Encoder::load(config, tensors, true, &quantization)
    }

    #[test]
    fn chunks_hold_whole_spans() {
        let spans = packed_spans(&[5, 3, 7, 1, 4]);
        let tokens = |chunks: &[Chunk]| chunks.iter().map(|c| c.tokens).collect::<Vec<_>>();
        assert_eq!(tokens(&chunk_spans(&spans, 8)), [8, 8, 4]);
        assert_eq!(tokens(&chunk_spans(&spans, 4)), [5, 3, 7, 1, 4]);
        assert_eq!(tokens(&chunk_spans(&spans, 100)), [20]);
        assert_eq!(chunk_spans(&spans, 8)[1].spans, 2..4);
        assert_eq!(chunk_spans(&spans, 8)[1].first_token, 8);
        assert!(chunk_spans(&[], 8).is_empty());
    }

    /// A batch larger than the scratch budget runs in chunks, with the same bits.
    #[test]
    fn chunked_runs_give_the_same_bits() -> Result<()> {
        let encoder = tiny_encoder()?;
        let per_token = bytes_per_token(encoder.config());
        let ids: Vec<i64> = (0..20).map(|i| i * 7 % 50).collect();
        let types: Vec<i64> = (0..20).map(|i| i % 2).collect();
        // Packed sequences.
        let lengths = [5, 3, 7, 1, 4];
        let positions: Vec<usize> = lengths.iter().flat_map(|&len| 0..len).collect();
        let spans = packed_spans(&lengths);
        let run = |spans: &[Span], positions: &[usize], bias: Option<&[f32]>, budget| {
            encoder.run(&ids, &types, positions, spans, bias, true, budget)
        };
        let whole = run(&spans, &positions, None, usize::MAX)?;
        assert!(whole.pooler_output.is_some());
        for tokens in [1, 4, 7, 8, 12] {
            let chunked = run(&spans, &positions, None, tokens * per_token)?;
            assert_eq!(chunked, whole, "packed, {tokens} tokens a chunk");
        }
        // A padded batch of 4 x 5 with a mask that is not a prefix (a bias).
        let mask: Vec<i64> = (0..20).map(|i| i64::from(i % 5 != 2)).collect();
        let bias = mask_bias(&mask);
        let positions: Vec<usize> = (0..20).map(|i| i % 5).collect();
        let spans = padded_spans(4, 5);
        let whole = run(&spans, &positions, Some(&bias), usize::MAX)?;
        for tokens in [1, 5, 9, 10] {
            let chunked = run(&spans, &positions, Some(&bias), tokens * per_token)?;
            assert_eq!(chunked, whole, "padded, {tokens} tokens a chunk");
        }
        Ok(())
    }
}
