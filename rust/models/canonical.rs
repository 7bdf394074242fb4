//! Any family to the canonical (BERT) names of [`super::families`]: `config.json` fields
//! ([`canonical_config`]) and stored tensor names ([`canonical_tensor_name`]); and the table
//! as JSON for the Python layer ([`table_json`]).

use serde_json::{json, Map, Value};

use super::families::{
    family_of, ConfigValue, DecoderFamily, Family, LayerNames, LmHeadNames, SequenceHead, BERT,
    BERT_DECODER, BERT_LAYER, FAMILIES, OTHER_ARCHITECTURES,
};
use crate::error::{Error, Result};

/// `config` (a `config.json` object) with its family's fields translated to BERT's; BERT
/// configurations come back unchanged. A field already under its BERT name is kept (a
/// configuration oxiformer saved), so translating twice changes nothing.
pub fn canonical_config(config: &Map<String, Value>, source: &str) -> Result<Map<String, Value>> {
    let model_type = config.get("model_type").and_then(Value::as_str);
    if let Some(other) = model_type.filter(|name| OTHER_ARCHITECTURES.contains(name)) {
        let supported: Vec<&str> = FAMILIES
            .iter()
            .flat_map(|family| family.model_types.iter().copied())
            .collect();
        return Err(Error::config(
            source,
            format!(
                "model_type '{other}' is an architecture oxiformer does not run (it runs \
                 model_type {}, and BERT encoder-decoders)",
                supported.join(", ")
            ),
        ));
    }
    let family = family_of(model_type);
    let present = |name: &str| config.get(name).filter(|value| !value.is_null());
    let mut out = config.clone();
    for field in family.config_fields {
        let value = match (present(field.name), present(field.bert)) {
            (Some(value), _) | (None, Some(value)) => Some(value.clone()),
            (None, None) => field.default.map(ConfigValue::to_json),
        };
        out.remove(field.name);
        if let Some(value) = value {
            out.insert(field.bert.to_owned(), value);
        }
    }
    for (name, value) in family.fixed {
        out.insert((*name).to_owned(), value.to_json());
    }
    if let Some(flag) = family.sinusoidal_flag {
        let sinusoidal = match config.get(flag) {
            None | Some(Value::Null) if present("position_embedding_type").is_some() => None,
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(value)) => Some(*value),
            Some(other) => {
                return Err(Error::config(
                    source,
                    format!("'{flag}' must be true or false, got {other}"),
                ))
            }
        };
        out.remove(flag);
        if let Some(sinusoidal) = sinusoidal {
            let kind = if sinusoidal { "sinusoidal" } else { "absolute" };
            out.insert("position_embedding_type".to_owned(), json!(kind));
        }
    }
    Ok(out)
}

/// The canonical (BERT) name of a stored tensor: a family's base prefix stripped
/// (`bert.`, `distilbert.`, `electra.`), TF-converted LayerNorm names (`gamma`, `beta`)
/// read as `weight`, `bias`, and a family's layer modules renamed to BERT's. Names that
/// belong to no encoder come back with the prefix stripped only.
pub fn canonical_tensor_name(stored: &str) -> String {
    let name = FAMILIES
        .iter()
        .find_map(|family| stored.strip_prefix(family.base_prefix))
        .unwrap_or(stored);
    let name = match name.rsplit_once('.') {
        Some((module, "gamma")) if module.ends_with("LayerNorm") => format!("{module}.weight"),
        Some((module, "beta")) if module.ends_with("LayerNorm") => format!("{module}.bias"),
        _ => name.to_owned(),
    };
    FAMILIES
        .iter()
        .find_map(|family| layer_to_bert(family, &name))
        .unwrap_or(name)
}

/// `{family.layers}.{i}.{module}.{kind}` in BERT's names, for a family whose layer
/// modules are not BERT's.
fn layer_to_bert(family: &Family, name: &str) -> Option<String> {
    if family.layers == BERT.layers && family.layer == BERT_LAYER {
        return None;
    }
    let rest = name.strip_prefix(family.layers)?.strip_prefix('.')?;
    let (index, rest) = rest.split_once('.')?;
    index.parse::<usize>().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let role = family.layer.roles().iter().position(|&m| m == module)?;
    let bert = BERT_LAYER.roles()[role];
    Some(format!("{}.{index}.{bert}.{kind}", BERT.layers))
}

/// The first components of the canonical names an encoder owns: a stored tensor there
/// that the encoder does not expect is an error, not another model's head.
pub fn encoder_namespaces() -> Vec<String> {
    let mut namespaces: Vec<String> = Vec::new();
    for family in &FAMILIES {
        let embeddings = [
            family.embeddings.word,
            family.embeddings.position,
            family.embeddings.token_type,
            family.embeddings.norm,
        ];
        let names = embeddings
            .into_iter()
            .chain(family.embeddings_project)
            .chain(family.pooler)
            .chain([family.layers]);
        for name in names {
            let first = name.split('.').next().unwrap_or(name);
            let namespace = format!("{first}.");
            if !namespaces.contains(&namespace) {
                namespaces.push(namespace);
            }
        }
    }
    namespaces
}

fn layer_json(names: &LayerNames) -> Value {
    json!({
        "query": names.query,
        "key": names.key,
        "value": names.value,
        "attention_output": names.attention_output,
        "attention_norm": names.attention_norm,
        "intermediate": names.intermediate,
        "output": names.output,
        "output_norm": names.output_norm,
    })
}

fn lm_head_json(names: &LmHeadNames) -> Value {
    json!({
        "transform": names.transform,
        "norm": names.norm,
        "decoder": names.decoder,
        "bias": names.bias,
    })
}

impl Family {
    /// The entry as JSON (what `_core.families()` gives Python).
    pub fn to_json(&self) -> Value {
        let sequence_head = match self.sequence_head {
            SequenceHead::Pooled { classifier } => {
                json!({"kind": "pooled", "classifier": classifier})
            }
            SequenceHead::FirstToken {
                dense,
                activation,
                out_proj,
            } => {
                json!({"kind": "first_token", "dense": dense, "activation": activation, "out_proj": out_proj})
            }
        };
        json!({
            "name": self.name,
            "model_types": self.model_types,
            "class_prefix": self.class_prefix,
            "base_prefix": self.base_prefix,
            "config_fields": self.config_fields.iter().map(|f| json!([f.name, f.bert])).collect::<Vec<_>>(),
            "sinusoidal_flag": self.sinusoidal_flag,
            "embeddings": {
                "word": self.embeddings.word,
                "position": self.embeddings.position,
                "token_type": self.embeddings.token_type,
                "norm": self.embeddings.norm,
            },
            "embeddings_project": self.embeddings_project,
            "layers": self.layers,
            "layer": layer_json(&self.layer),
            "pooler": self.pooler,
            "lm_head": self.lm_head.as_ref().map(lm_head_json),
            "sequence_head": sequence_head,
            "token_head": self.token_head,
        })
    }
}

impl DecoderFamily {
    pub fn to_json(&self) -> Value {
        let cross = &self.cross_attention;
        json!({
            "name": self.name,
            "body": self.body.name,
            "body_prefix": self.body_prefix,
            "cross_attention": {
                "query": cross.query, "key": cross.key, "value": cross.value,
                "output": cross.output, "norm": cross.norm,
            },
            "lm_head": lm_head_json(&self.lm_head),
            "is_decoder": self.is_decoder,
            "add_cross_attention": self.add_cross_attention,
            "tie_word_embeddings": self.tie_word_embeddings,
            "encoder_decoder_type": self.encoder_decoder_type,
            "encoder_prefix": self.encoder_prefix,
            "decoder_prefix": self.decoder_prefix,
            "encoder_projection": self.encoder_projection,
        })
    }
}

/// The whole table as JSON: `{"encoders": [...], "decoders": [...], "encoder_namespaces": [...]}`.
pub fn table_json() -> Value {
    json!({
        "encoders": FAMILIES.iter().map(Family::to_json).collect::<Vec<_>>(),
        "decoders": [BERT_DECODER.to_json()],
        "encoder_namespaces": encoder_namespaces(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_are_translated_to_bert() {
        let cases = [
            (
                "bert.encoder.layer.3.attention.self.query.weight",
                "encoder.layer.3.attention.self.query.weight",
            ),
            (
                "distilbert.transformer.layer.0.attention.q_lin.bias",
                "encoder.layer.0.attention.self.query.bias",
            ),
            (
                "transformer.layer.11.ffn.lin2.weight",
                "encoder.layer.11.output.dense.weight",
            ),
            (
                "transformer.layer.2.output_layer_norm.weight",
                "encoder.layer.2.output.LayerNorm.weight",
            ),
            (
                "electra.embeddings_project.weight",
                "embeddings_project.weight",
            ),
            ("embeddings.LayerNorm.gamma", "embeddings.LayerNorm.weight"),
            (
                "encoder.layer.0.output.LayerNorm.beta",
                "encoder.layer.0.output.LayerNorm.bias",
            ),
            (
                "cls.predictions.decoder.weight",
                "cls.predictions.decoder.weight",
            ),
            (
                "transformer.layer.x.ffn.lin1.weight",
                "transformer.layer.x.ffn.lin1.weight",
            ),
            ("classifier.gamma", "classifier.gamma"),
        ];
        for (stored, canonical) in cases {
            assert_eq!(canonical_tensor_name(stored), canonical, "{stored}");
        }
    }

    #[test]
    fn configs_are_translated_to_bert_fields() -> Result<()> {
        let object = |value: Value| value.as_object().cloned().unwrap_or_default();
        let distilbert = object(json!({"model_type": "distilbert", "dim": 32, "n_layers": 2,
            "sinusoidal_pos_embds": true}));
        let bert = canonical_config(&distilbert, "c.json")?;
        assert_eq!(bert["hidden_size"], json!(32));
        assert_eq!(bert["num_hidden_layers"], json!(2));
        assert_eq!(bert["num_attention_heads"], json!(12));
        assert_eq!(bert["type_vocab_size"], json!(0));
        assert_eq!(bert["position_embedding_type"], json!("sinusoidal"));
        assert!(!bert.contains_key("dim") && !bert.contains_key("sinusoidal_pos_embds"));
        assert_eq!(canonical_config(&bert, "again")?, bert);
        let electra = object(json!({"model_type": "electra", "hidden_size": 32}));
        assert_eq!(
            canonical_config(&electra, "c")?["embedding_size"],
            json!(128)
        );
        let plain = object(json!({"model_type": "bert", "hidden_size": 8, "x": [1]}));
        assert_eq!(canonical_config(&plain, "c")?, plain);
        let bad = object(json!({"model_type": "distilbert", "sinusoidal_pos_embds": "yes"}));
        let err = canonical_config(&bad, "c.json")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("'sinusoidal_pos_embds' must be true or false")));
        let roberta = object(json!({"model_type": "roberta", "hidden_size": 8}));
        let err = canonical_config(&roberta, "c.json")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("model_type 'roberta' is an architecture oxiformer does not run")
                && err.contains("bert, distilbert, electra"),
            "{err}"
        );
        let custom = object(json!({"model_type": "my-bert", "hidden_size": 8}));
        assert_eq!(canonical_config(&custom, "c")?, custom);
        Ok(())
    }

    #[test]
    fn namespaces_cover_every_family() {
        let namespaces = encoder_namespaces();
        for expected in [
            "embeddings.",
            "encoder.",
            "pooler.",
            "transformer.",
            "embeddings_project.",
        ] {
            assert!(namespaces.iter().any(|n| n == expected), "{expected}");
        }
    }
}
