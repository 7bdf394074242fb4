//! Each model family's Hugging Face names and options, stated once.
//!
//! The models of `models/` load their tensors by BERT's names, the *canonical* ones: a BERT
//! checkpoint needs no translation, and any other family is translated to BERT's names by
//! [`super::canonical`], from this table: its `config.json` fields and its tensor names. The
//! next family (RoBERTa, XLM-R) is one more entry of [`FAMILIES`] plus its tokenizer. The
//! Python layer reads the same table (`_core.families()`), for the heads it runs in NumPy.

use serde_json::{json, Value};

/// The modules of one Transformer layer, by role, under the layer's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_output: &'static str,
    pub attention_norm: &'static str,
    pub intermediate: &'static str,
    pub output: &'static str,
    pub output_norm: &'static str,
}

impl LayerNames {
    /// The dense modules in the order a layer runs them: query, key, value, attention
    /// output, intermediate, output.
    pub const fn dense(&self) -> [&'static str; 6] {
        [
            self.query,
            self.key,
            self.value,
            self.attention_output,
            self.intermediate,
            self.output,
        ]
    }

    /// The two LayerNorms: after attention, after the feed-forward block.
    pub const fn norms(&self) -> [&'static str; 2] {
        [self.attention_norm, self.output_norm]
    }

    /// Every module, in a fixed role order (for translating between families).
    pub const fn roles(&self) -> [&'static str; 8] {
        [
            self.query,
            self.key,
            self.value,
            self.attention_output,
            self.attention_norm,
            self.intermediate,
            self.output,
            self.output_norm,
        ]
    }
}

/// The embeddings' modules (`{name}.weight`; the LayerNorm also has `.bias`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingNames {
    pub word: &'static str,
    pub position: &'static str,
    pub token_type: &'static str,
    pub norm: &'static str,
}

/// The cross-attention of a decoder layer (HF `BertAttention` as `crossattention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossAttentionNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub output: &'static str,
    pub norm: &'static str,
}

impl CrossAttentionNames {
    /// The dense modules: query, key, value, output.
    pub const fn dense(&self) -> [&'static str; 4] {
        [self.query, self.key, self.value, self.output]
    }
}

/// The language-model head (HF `BertLMPredictionHead`): transform (dense, activation,
/// LayerNorm), then the decoder matrix, tied to the word embeddings, plus a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LmHeadNames {
    pub transform: &'static str,
    pub norm: &'static str,
    /// `{decoder}.weight (vocab, H)` and `{decoder}.bias (vocab)`.
    pub decoder: &'static str,
    /// Where checkpoints store the decoder's bias (HF ties the two names).
    pub bias: &'static str,
}

/// A sequence-classification head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceHead {
    /// HF `BertForSequenceClassification`: the pooler, then `{classifier}` (a linear layer).
    Pooled { classifier: &'static str },
    /// On the first token: `{dense}`, `activation` (HF's name), then `{out_proj}` (HF
    /// `ElectraClassificationHead`; DistilBERT's `pre_classifier`, ReLU, `classifier`).
    FirstToken {
        dense: &'static str,
        activation: &'static str,
        out_proj: &'static str,
    },
}

/// A value of a `config.json` field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigValue {
    Int(i64),
    Float(f64),
    Str(&'static str),
}

impl ConfigValue {
    pub fn to_json(self) -> Value {
        match self {
            ConfigValue::Int(value) => json!(value),
            ConfigValue::Float(value) => json!(value),
            ConfigValue::Str(value) => json!(value),
        }
    }
}

/// A `config.json` field of a family and the BERT field it becomes, with the family's
/// default when the file leaves it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigField {
    pub name: &'static str,
    pub bert: &'static str,
    pub default: Option<ConfigValue>,
}

/// One family: how its checkpoints name things, and what it fixes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Family {
    /// oxiformer's name of the family.
    pub name: &'static str,
    /// The `model_type` values of its `config.json`.
    pub model_types: &'static [&'static str],
    /// The start of its HF class names (`Bert` of `BertForMaskedLM`).
    pub class_prefix: &'static str,
    /// The base model's prefix inside task checkpoints (`bert.` in `BertForMaskedLM`).
    pub base_prefix: &'static str,
    /// Fields renamed to BERT's (with defaults); other fields pass through.
    pub config_fields: &'static [ConfigField],
    /// BERT fields the family fixes, whatever `config.json` says.
    pub fixed: &'static [(&'static str, ConfigValue)],
    /// A boolean field that, when true, selects the sinusoidal positions.
    pub sinusoidal_flag: Option<&'static str>,
    pub embeddings: EmbeddingNames,
    /// Maps `embedding_size` to `hidden_size` when the two differ (ELECTRA).
    pub embeddings_project: Option<&'static str>,
    /// The layers' prefix: layer `i` is `{layers}.{i}`.
    pub layers: &'static str,
    pub layer: LayerNames,
    pub pooler: Option<&'static str>,
    pub lm_head: Option<LmHeadNames>,
    pub sequence_head: SequenceHead,
    /// The token-classification head (a linear layer on every token).
    pub token_head: &'static str,
}

const BERT_EMBEDDINGS: EmbeddingNames = EmbeddingNames {
    word: "embeddings.word_embeddings",
    position: "embeddings.position_embeddings",
    token_type: "embeddings.token_type_embeddings",
    norm: "embeddings.LayerNorm",
};

/// HF `BertLayer`: the canonical names.
pub const BERT_LAYER: LayerNames = LayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
};

/// HF `BertOnlyMLMHead` (`BertForMaskedLM`, `BertLMHeadModel`).
pub const BERT_LM_HEAD: LmHeadNames = LmHeadNames {
    transform: "cls.predictions.transform.dense",
    norm: "cls.predictions.transform.LayerNorm",
    decoder: "cls.predictions.decoder",
    bias: "cls.predictions.bias",
};

/// `transformers.BertConfig`: the canonical fields.
pub const BERT: Family = Family {
    name: "bert",
    model_types: &["bert"],
    class_prefix: "Bert",
    base_prefix: "bert.",
    config_fields: &[],
    fixed: &[],
    sinusoidal_flag: None,
    embeddings: BERT_EMBEDDINGS,
    embeddings_project: None,
    layers: "encoder.layer",
    layer: BERT_LAYER,
    pooler: Some("pooler.dense"),
    lm_head: Some(BERT_LM_HEAD),
    sequence_head: SequenceHead::Pooled {
        classifier: "classifier",
    },
    token_head: "classifier",
};

/// `transformers.DistilBertConfig` and `modeling_distilbert.py`.
pub const DISTILBERT: Family = Family {
    name: "distilbert",
    model_types: &["distilbert"],
    class_prefix: "DistilBert",
    base_prefix: "distilbert.",
    config_fields: &[
        field("vocab_size", "vocab_size", ConfigValue::Int(30522)),
        field(
            "max_position_embeddings",
            "max_position_embeddings",
            ConfigValue::Int(512),
        ),
        field("dim", "hidden_size", ConfigValue::Int(768)),
        field("n_layers", "num_hidden_layers", ConfigValue::Int(6)),
        field("n_heads", "num_attention_heads", ConfigValue::Int(12)),
        field("hidden_dim", "intermediate_size", ConfigValue::Int(3072)),
        field("activation", "hidden_act", ConfigValue::Str("gelu")),
    ],
    fixed: &[
        ("type_vocab_size", ConfigValue::Int(0)),
        ("layer_norm_eps", ConfigValue::Float(1e-12)),
    ],
    sinusoidal_flag: Some("sinusoidal_pos_embds"),
    embeddings: BERT_EMBEDDINGS,
    embeddings_project: None,
    layers: "transformer.layer",
    layer: LayerNames {
        query: "attention.q_lin",
        key: "attention.k_lin",
        value: "attention.v_lin",
        attention_output: "attention.out_lin",
        attention_norm: "sa_layer_norm",
        intermediate: "ffn.lin1",
        output: "ffn.lin2",
        output_norm: "output_layer_norm",
    },
    pooler: None,
    lm_head: None,
    sequence_head: SequenceHead::FirstToken {
        dense: "pre_classifier",
        activation: "relu",
        out_proj: "classifier",
    },
    token_head: "classifier",
};

/// `transformers.ElectraConfig` (the discriminator; BERT's layers, smaller embeddings).
pub const ELECTRA: Family = Family {
    name: "electra",
    model_types: &["electra"],
    class_prefix: "Electra",
    base_prefix: "electra.",
    config_fields: &[field(
        "embedding_size",
        "embedding_size",
        ConfigValue::Int(128),
    )],
    fixed: &[],
    sinusoidal_flag: None,
    embeddings: BERT_EMBEDDINGS,
    embeddings_project: Some("embeddings_project"),
    layers: "encoder.layer",
    layer: BERT_LAYER,
    pooler: None,
    lm_head: None,
    sequence_head: SequenceHead::FirstToken {
        dense: "classifier.dense",
        activation: "gelu",
        out_proj: "classifier.out_proj",
    },
    token_head: "classifier",
};

/// The encoder families, BERT first (the fallback for an unknown `model_type`).
pub const FAMILIES: [Family; 3] = [BERT, DISTILBERT, ELECTRA];

/// `model_type`s of Hugging Face architectures oxiformer does not run. An unknown
/// `model_type` loads as BERT, but these are known to differ: some keep BERT's tensor names
/// and compute otherwise (RoBERTa and XLM-R count positions from the padding index, so
/// loading them as BERT would run and return wrong numbers), the others would fail on a
/// list of missing tensors instead of their name.
pub const OTHER_ARCHITECTURES: &[&str] = &[
    // RoBERTa and its kin: BERT's names, positions offset by the padding index
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "data2vec-text",
    "ibert",
    "xmod",
    "roberta-prelayernorm",
    "longformer",
    "luke",
    // other attention, positions or embeddings
    "big_bird",
    "nezha",
    "roformer",
    "mpnet",
    "deberta",
    "deberta-v2",
    "albert",
    "mobilebert",
    "squeezebert",
    "funnel",
    "convbert",
    "rembert",
    "canine",
    "megatron-bert",
    "ernie",
    "ernie_m",
    "layoutlm",
    "layoutlmv2",
    "layoutlmv3",
    "markuplm",
    "lilt",
    "tapas",
    "esm",
    "nystromformer",
    "yoso",
    "mra",
    "modernbert",
    "nomic_bert",
    "xlnet",
    "xlm",
    "flaubert",
    // decoders and other encoder-decoders
    "gpt2",
    "llama",
    "t5",
    "mt5",
    "bart",
    "mbart",
    "marian",
    "pegasus",
];

/// A BERT decoder (`BertLMHeadModel` with `is_decoder` and `add_cross_attention`), and how
/// `EncoderDecoderModel` nests it beside its encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoderFamily {
    pub name: &'static str,
    /// The layers and embeddings (BERT's).
    pub body: Family,
    /// The body's prefix inside the decoder (`decoder.bert.*`).
    pub body_prefix: &'static str,
    pub cross_attention: CrossAttentionNames,
    pub lm_head: LmHeadNames,
    /// `config.json` flags of a decoder layer, and whether the LM head's matrix is the word
    /// embeddings (HF's defaults: false, false, true).
    pub is_decoder: &'static str,
    pub add_cross_attention: &'static str,
    pub tie_word_embeddings: &'static str,
    /// `EncoderDecoderModel`: its `model_type`, the prefixes of the two halves (also the
    /// sections of its `config.json`), and the projection of the encoder's output when the
    /// two hidden sizes differ.
    pub encoder_decoder_type: &'static str,
    pub encoder_prefix: &'static str,
    pub decoder_prefix: &'static str,
    pub encoder_projection: &'static str,
}

pub const BERT_DECODER: DecoderFamily = DecoderFamily {
    name: "bert-decoder",
    body: BERT,
    body_prefix: "bert.",
    cross_attention: CrossAttentionNames {
        query: "crossattention.self.query",
        key: "crossattention.self.key",
        value: "crossattention.self.value",
        output: "crossattention.output.dense",
        norm: "crossattention.output.LayerNorm",
    },
    lm_head: BERT_LM_HEAD,
    is_decoder: "is_decoder",
    add_cross_attention: "add_cross_attention",
    tie_word_embeddings: "tie_word_embeddings",
    encoder_decoder_type: "encoder-decoder",
    encoder_prefix: "encoder.",
    decoder_prefix: "decoder.",
    encoder_projection: "enc_to_dec_proj",
};

const fn field(name: &'static str, bert: &'static str, default: ConfigValue) -> ConfigField {
    ConfigField {
        name,
        bert,
        default: Some(default),
    }
}

/// The family of a `config.json`'s `model_type` (BERT when absent or unknown: many
/// BERT-architecture checkpoints name themselves otherwise).
pub fn family_of(model_type: Option<&str>) -> &'static Family {
    model_type
        .and_then(|model_type| {
            FAMILIES
                .iter()
                .find(|family| family.model_types.contains(&model_type))
        })
        .unwrap_or(&FAMILIES[0])
}
