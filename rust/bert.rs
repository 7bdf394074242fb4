//! The BERT encoder: embeddings, N layers of attention + feed-forward with
//! residuals and LayerNorm, and the optional pooler. One struct per HF module
//! (`BertLayer`, `BertPooler`, `BertModel` in transformers'
//! `models/bert/modeling_bert.py`); weight names are HF's.

use crate::attention::{mask_bias, multi_head_attention, AttentionShape};
use crate::config::{Activation, EncoderConfig};
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};
use crate::linear::Linear;
use crate::ops::{add_layer_norm, apply_activation};
use crate::threads;
use crate::weights::TensorMap;

/// Scratch buffers for one forward pass, reused by every layer.
struct Workspace {
    /// (B*T, 3H)
    qkv: Vec<f32>,
    /// (B*T, H): attention context, before the output projection.
    context: Vec<f32>,
    /// (B*T, H): the attention block's output, the FFN's residual.
    attention_out: Vec<f32>,
    /// (B*T, I)
    intermediate: Vec<f32>,
}

impl Workspace {
    fn new(config: &EncoderConfig, tokens: usize) -> Self {
        let hidden = config.hidden_size;
        Workspace {
            qkv: vec![0.0; tokens * 3 * hidden],
            context: vec![0.0; tokens * hidden],
            attention_out: vec![0.0; tokens * hidden],
            intermediate: vec![0.0; tokens * config.intermediate_size],
        }
    }
}

/// A LayerNorm's parameters.
#[derive(Debug, Clone)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn load(tensors: &mut TensorMap, prefix: &str, size: usize) -> Result<Self> {
        Ok(Norm {
            gamma: tensors.take(&format!("{prefix}.weight"), &[size])?,
            beta: tensors.take(&format!("{prefix}.bias"), &[size])?,
        })
    }
}

/// HF `BertLayer`: self-attention, output projection + residual + LayerNorm,
/// intermediate activation, output projection + residual + LayerNorm.
#[derive(Debug, Clone)]
pub struct Layer {
    /// query, key and value stacked: (3H, H)
    qkv: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

impl Layer {
    fn expected_tensors(config: &EncoderConfig, index: usize) -> Vec<(String, Vec<usize>)> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let prefix = format!("encoder.layer.{index}");
        let mut names = Vec::new();
        let mut linear = |name: &str, out_features: usize, in_features: usize| {
            names.push((
                format!("{prefix}.{name}.weight"),
                vec![out_features, in_features],
            ));
            names.push((format!("{prefix}.{name}.bias"), vec![out_features]));
        };
        linear("attention.self.query", hidden, hidden);
        linear("attention.self.key", hidden, hidden);
        linear("attention.self.value", hidden, hidden);
        linear("attention.output.dense", hidden, hidden);
        linear("intermediate.dense", inner, hidden);
        linear("output.dense", hidden, inner);
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            names.push((format!("{prefix}.{norm}.weight"), vec![hidden]));
            names.push((format!("{prefix}.{norm}.bias"), vec![hidden]));
        }
        names
    }

    fn load(tensors: &mut TensorMap, config: &EncoderConfig, index: usize) -> Result<Self> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let prefix = format!("encoder.layer.{index}");
        let mut linear = |name: &str, in_features: usize, out_features: usize| {
            Linear::load(
                tensors,
                &format!("{prefix}.{name}"),
                in_features,
                out_features,
            )
        };
        let qkv = Linear::concat(vec![
            linear("attention.self.query", hidden, hidden)?,
            linear("attention.self.key", hidden, hidden)?,
            linear("attention.self.value", hidden, hidden)?,
        ]);
        let attention_output = linear("attention.output.dense", hidden, hidden)?;
        let intermediate = linear("intermediate.dense", hidden, inner)?;
        let output = linear("output.dense", inner, hidden)?;
        Ok(Layer {
            qkv,
            attention_output,
            intermediate,
            output,
            attention_norm: Norm::load(
                tensors,
                &format!("{prefix}.attention.output.LayerNorm"),
                hidden,
            )?,
            output_norm: Norm::load(tensors, &format!("{prefix}.output.LayerNorm"), hidden)?,
        })
    }

    /// `hidden (B*T, H)` in place.
    fn forward(
        &self,
        hidden: &mut [f32],
        bias: &[f32],
        shape: AttentionShape,
        activation: Activation,
        eps: f64,
        work: &mut Workspace,
    ) {
        let rows = shape.batch * shape.seq_len;
        self.qkv.forward(hidden, rows, &mut work.qkv);
        multi_head_attention(&work.qkv, bias, shape, &mut work.context);
        self.attention_output
            .forward(&work.context, rows, &mut work.attention_out);
        let norm = &self.attention_norm;
        add_layer_norm(
            &mut work.attention_out,
            hidden,
            &norm.gamma,
            &norm.beta,
            eps,
        );
        self.intermediate
            .forward_no_bias(&work.attention_out, rows, &mut work.intermediate);
        apply_activation(&mut work.intermediate, self.intermediate.bias(), activation);
        self.output.forward(&work.intermediate, rows, hidden);
        let norm = &self.output_norm;
        add_layer_norm(hidden, &work.attention_out, &norm.gamma, &norm.beta, eps);
    }
}

/// HF `BertPooler`: dense + tanh on the first token of each sequence.
#[derive(Debug, Clone)]
pub struct Pooler {
    dense: Linear,
}

impl Pooler {
    fn forward(&self, hidden: &[f32], batch: usize, seq_len: usize) -> Vec<f32> {
        let size = self.dense.in_features();
        let first_tokens: Vec<f32> = hidden
            .chunks_exact(seq_len * size)
            .flat_map(|sequence| sequence[..size].iter().copied())
            .collect();
        let mut pooled = vec![0.0; batch * self.dense.out_features()];
        self.dense.forward(&first_tokens, batch, &mut pooled);
        pooled.iter_mut().for_each(|value| *value = value.tanh());
        pooled
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
pub fn expected_tensors(config: &EncoderConfig, with_pooler: bool) -> Vec<(String, Vec<usize>)> {
    let mut names = Embeddings::expected_tensors(config);
    for index in 0..config.num_hidden_layers {
        names.extend(Layer::expected_tensors(config, index));
    }
    if with_pooler {
        let hidden = config.hidden_size;
        names.push(("pooler.dense.weight".to_owned(), vec![hidden, hidden]));
        names.push(("pooler.dense.bias".to_owned(), vec![hidden]));
    }
    names
}

impl Encoder {
    /// Build from HF-named tensors. Tensors left over after loading (inside
    /// the encoder's namespaces) are an error: they mean a different model.
    pub fn load(config: EncoderConfig, mut tensors: TensorMap, with_pooler: bool) -> Result<Self> {
        let embeddings = Embeddings::load(&mut tensors, &config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| Layer::load(&mut tensors, &config, index))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if with_pooler {
            let hidden = config.hidden_size;
            Some(Pooler {
                dense: Linear::load(&mut tensors, "pooler.dense", hidden, hidden)?,
            })
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

    /// Check inputs of shape (batch, seq_len) before any compute.
    fn validate(
        &self,
        input_ids: &[i64],
        attention_mask: &[i64],
        token_type_ids: &[i64],
        batch: usize,
        seq_len: usize,
    ) -> Result<()> {
        let tokens = batch
            .checked_mul(seq_len)
            .ok_or_else(|| Error::input("batch x sequence length overflows"))?;
        for (name, values) in [
            ("input_ids", input_ids),
            ("attention_mask", attention_mask),
            ("token_type_ids", token_type_ids),
        ] {
            if values.len() != tokens {
                return Err(Error::input(format!(
                    "{name} has {} values, expected batch {batch} x sequence {seq_len}",
                    values.len()
                )));
            }
        }
        let config = &self.config;
        if seq_len > config.max_position_embeddings {
            return Err(Error::input(format!(
                "sequence length {seq_len} exceeds max_position_embeddings {}",
                config.max_position_embeddings
            )));
        }
        let check_range = |name: &str, values: &[i64], limit: usize, what: &str| -> Result<()> {
            match values
                .iter()
                .position(|&v| v < 0 || v as u64 >= limit as u64)
            {
                None => Ok(()),
                Some(index) => Err(Error::input(format!(
                    "{name}[{}, {}] = {} is outside [0, {limit}) ({what})",
                    index / seq_len.max(1),
                    index % seq_len.max(1),
                    values[index]
                ))),
            }
        };
        check_range("input_ids", input_ids, config.vocab_size, "vocab_size")?;
        check_range("attention_mask", attention_mask, 2, "a mask holds 0 or 1")?;
        check_range(
            "token_type_ids",
            token_type_ids,
            config.type_vocab_size.max(1),
            "type_vocab_size",
        )?;
        Ok(())
    }

    /// Run the encoder on (batch, seq_len) inputs, on the oxiformer pool.
    pub fn forward(
        &self,
        input_ids: &[i64],
        attention_mask: &[i64],
        token_type_ids: &[i64],
        batch: usize,
        seq_len: usize,
        output_hidden_states: bool,
    ) -> Result<EncoderOutput> {
        self.validate(input_ids, attention_mask, token_type_ids, batch, seq_len)?;
        threads::run(|| {
            self.forward_validated(
                input_ids,
                attention_mask,
                token_type_ids,
                batch,
                seq_len,
                output_hidden_states,
            )
        })
    }

    fn forward_validated(
        &self,
        input_ids: &[i64],
        attention_mask: &[i64],
        token_type_ids: &[i64],
        batch: usize,
        seq_len: usize,
        output_hidden_states: bool,
    ) -> EncoderOutput {
        let config = &self.config;
        let tokens = batch * seq_len;
        let mut hidden = vec![0.0f32; tokens * config.hidden_size];
        if tokens == 0 {
            return EncoderOutput {
                last_hidden_state: hidden,
                pooler_output: self.pooler.as_ref().map(|_| vec![0.0; 0]),
                hidden_states: output_hidden_states
                    .then(|| vec![Vec::new(); config.num_hidden_layers + 1]),
            };
        }
        self.embeddings
            .forward(input_ids, token_type_ids, seq_len, &mut hidden);
        let mut hidden_states = output_hidden_states.then(|| vec![hidden.clone()]);
        let bias = mask_bias(attention_mask);
        let shape = AttentionShape {
            batch,
            seq_len,
            num_heads: config.num_attention_heads,
            head_size: config.head_size(),
        };
        let mut work = Workspace::new(config, tokens);
        for layer in &self.layers {
            layer.forward(
                &mut hidden,
                &bias,
                shape,
                config.hidden_act,
                config.layer_norm_eps,
                &mut work,
            );
            if let Some(states) = hidden_states.as_mut() {
                states.push(hidden.clone());
            }
        }
        let pooler_output = self
            .pooler
            .as_ref()
            .map(|pooler| pooler.forward(&hidden, batch, seq_len));
        EncoderOutput {
            last_hidden_state: hidden,
            pooler_output,
            hidden_states,
        }
    }
}
