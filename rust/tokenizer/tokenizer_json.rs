//! HF `tokenizer.json`: parse a WordPiece tokenizer with the BERT pipeline
//! (normalizer, pre-tokenizer, post-processor, decoder, added tokens) and
//! write one back. tokenizer.json's own `truncation` / `padding` sections are
//! ignored, as transformers does: the call's arguments decide.

use serde_json::{json, Map, Value};

use super::{
    AddedToken, AddedVocabulary, DecoderOptions, NormalizerOptions, SpecialTokens, Template,
    TemplatePiece, Tokenizer, Vocab,
};
use crate::error::{Error, Result};

/// HF's `max_input_chars_per_word` default.
pub(super) const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// A tokenizer error naming the file (or other origin).
pub(super) fn error(origin: &str, message: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{origin}: {message}"))
}

pub(super) fn get_bool(object: &Value, key: &str, default: bool, origin: &str) -> Result<bool> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(value)) => Ok(*value),
        Some(other) => Err(error(
            origin,
            format!("'{key}' must be true or false, not {other}"),
        )),
    }
}

pub(super) fn get_optional_bool(object: &Value, key: &str, origin: &str) -> Result<Option<bool>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(error(
            origin,
            format!("'{key}' must be true, false or null, not {other}"),
        )),
    }
}

fn get_str<'a>(object: &'a Value, key: &str, origin: &str) -> Result<Option<&'a str>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(error(
            origin,
            format!("'{key}' must be a string, not {other}"),
        )),
    }
}

fn get_id(value: &Value, what: &str, origin: &str) -> Result<u32> {
    value
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| {
            error(
                origin,
                format!("{what}: expected a token id, found {value}"),
            )
        })
}

fn parse_normalizer(value: Option<&Value>, origin: &str) -> Result<NormalizerOptions> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(NormalizerOptions {
            clean_text: false,
            handle_chinese_chars: false,
            strip_accents: Some(false),
            lowercase: false,
        });
    };
    match get_str(value, "type", origin)? {
        Some("BertNormalizer") => Ok(NormalizerOptions {
            clean_text: get_bool(value, "clean_text", true, origin)?,
            handle_chinese_chars: get_bool(value, "handle_chinese_chars", true, origin)?,
            strip_accents: get_optional_bool(value, "strip_accents", origin)?,
            lowercase: get_bool(value, "lowercase", true, origin)?,
        }),
        other => Err(error(
            origin,
            format!("normalizer {other:?} is not supported (only BertNormalizer)"),
        )),
    }
}

fn parse_added_tokens(value: Option<&Value>, origin: &str) -> Result<Vec<AddedToken>> {
    let Some(list) = value.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|item| {
            let content = get_str(item, "content", origin)?
                .ok_or_else(|| error(origin, "an added token has no 'content'"))?;
            let id = get_id(item.get("id").unwrap_or(&Value::Null), content, origin)?;
            let token = AddedToken {
                content: content.to_string(),
                id,
                single_word: get_bool(item, "single_word", false, origin)?,
                lstrip: get_bool(item, "lstrip", false, origin)?,
                rstrip: get_bool(item, "rstrip", false, origin)?,
                normalized: get_bool(item, "normalized", false, origin)?,
                special: get_bool(item, "special", false, origin)?,
            };
            if token.normalized {
                return Err(error(
                    origin,
                    format!("added token '{content}' has normalized=true, which is not supported"),
                ));
            }
            Ok(token)
        })
        .collect()
}

fn parse_template_pieces(
    value: Option<&Value>,
    specials: &Value,
    origin: &str,
) -> Result<Vec<TemplatePiece>> {
    let list = value
        .and_then(Value::as_array)
        .ok_or_else(|| error(origin, "TemplateProcessing without 'single' / 'pair' lists"))?;
    list.iter()
        .map(|item| {
            if let Some(special) = item.get("SpecialToken") {
                let name = get_str(special, "id", origin)?.unwrap_or("");
                let ids = specials
                    .get(name)
                    .and_then(|entry| entry.get("ids"))
                    .and_then(Value::as_array)
                    .ok_or_else(|| error(origin, format!("template token '{name}' has no ids")))?
                    .iter()
                    .map(|id| get_id(id, name, origin))
                    .collect::<Result<Vec<u32>>>()?;
                let type_id = get_id(special.get("type_id").unwrap_or(&json!(0)), name, origin)?;
                Ok(TemplatePiece::Special { ids, type_id })
            } else if let Some(sequence) = item.get("Sequence") {
                let index = match get_str(sequence, "id", origin)? {
                    Some("B") => 1,
                    _ => 0,
                };
                let type_id = get_id(
                    sequence.get("type_id").unwrap_or(&json!(0)),
                    "Sequence",
                    origin,
                )?;
                Ok(TemplatePiece::Sequence { index, type_id })
            } else {
                Err(error(origin, format!("unknown template piece {item}")))
            }
        })
        .collect()
}

/// The template and the (cls, sep) token names it uses.
fn parse_post_processor(
    value: Option<&Value>,
    origin: &str,
) -> Result<(Template, Option<(String, String)>)> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok((Template::none(), None));
    };
    let pair_entry = |key: &str| -> Result<(String, u32)> {
        let entry = value.get(key).and_then(Value::as_array);
        match entry.map(Vec::as_slice) {
            Some([Value::String(token), id]) => Ok((token.clone(), get_id(id, token, origin)?)),
            _ => Err(error(
                origin,
                format!("BertProcessing needs '{key}': [token, id]"),
            )),
        }
    };
    match get_str(value, "type", origin)? {
        Some("BertProcessing") => {
            let (cls, cls_id) = pair_entry("cls")?;
            let (sep, sep_id) = pair_entry("sep")?;
            Ok((Template::bert(cls_id, sep_id), Some((cls, sep))))
        }
        Some("TemplateProcessing") => {
            let specials = value.get("special_tokens").cloned().unwrap_or(json!({}));
            let single = parse_template_pieces(value.get("single"), &specials, origin)?;
            let pair = parse_template_pieces(value.get("pair"), &specials, origin)?;
            let name = |pieces: &[TemplatePiece], index: usize| -> Option<String> {
                let TemplatePiece::Special { ids, .. } = pieces.get(index)? else {
                    return None;
                };
                let id = *ids.first()?;
                specials.as_object()?.iter().find_map(|(name, entry)| {
                    let first = entry.get("ids")?.as_array()?.first()?.as_u64()?;
                    (first == u64::from(id)).then(|| name.clone())
                })
            };
            let roles = name(&single, 0).zip(name(&single, 2));
            Ok((Template { single, pair }, roles))
        }
        other => Err(error(
            origin,
            format!(
                "post_processor {other:?} is not supported (BertProcessing or TemplateProcessing)"
            ),
        )),
    }
}

fn parse_decoder(value: Option<&Value>, origin: &str) -> Result<Option<DecoderOptions>> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    match get_str(value, "type", origin)? {
        Some("WordPiece") => Ok(Some(DecoderOptions {
            prefix: get_str(value, "prefix", origin)?
                .unwrap_or("##")
                .to_string(),
            cleanup: get_bool(value, "cleanup", true, origin)?,
        })),
        other => Err(error(
            origin,
            format!("decoder {other:?} is not supported (only WordPiece)"),
        )),
    }
}

/// Parse an HF `tokenizer.json` (a WordPiece model with the BERT pipeline).
pub fn from_tokenizer_json(text: &str, origin: &str) -> Result<Tokenizer> {
    let root: Value = serde_json::from_str(text).map_err(|err| error(origin, err))?;
    let model = root
        .get("model")
        .ok_or_else(|| error(origin, "no 'model' section"))?;
    if let Some(kind) = get_str(model, "type", origin)? {
        if kind != "WordPiece" {
            return Err(error(
                origin,
                format!("model type '{kind}' is not supported (only WordPiece)"),
            ));
        }
    }
    let prefix = get_str(model, "continuing_subword_prefix", origin)?.unwrap_or("##");
    let entries = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| error(origin, "model has no 'vocab' object"))?;
    let pairs = entries
        .iter()
        .map(|(token, id)| Ok((token.clone(), get_id(id, token, origin)?)))
        .collect::<Result<Vec<_>>>()?;
    let vocab = Vocab::from_pairs(pairs, prefix, origin)?;
    let max_chars = match model.get("max_input_chars_per_word") {
        None | Some(Value::Null) => MAX_INPUT_CHARS_PER_WORD,
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| error(origin, "'max_input_chars_per_word' must be a count"))?,
    };
    match root
        .get("pre_tokenizer")
        .and_then(|value| value.get("type"))
    {
        Some(Value::String(kind)) if kind == "BertPreTokenizer" => {}
        other => {
            return Err(error(
                origin,
                format!("pre_tokenizer {other:?} is not supported (only BertPreTokenizer)"),
            ))
        }
    }
    let normalizer = parse_normalizer(root.get("normalizer"), origin)?;
    let added = parse_added_tokens(root.get("added_tokens"), origin)?;
    let (template, roles) = parse_post_processor(root.get("post_processor"), origin)?;
    let mut special = SpecialTokens::default();
    if let Some(unk) = get_str(model, "unk_token", origin)? {
        special.unk = unk.to_string();
    }
    if let Some((cls, sep)) = roles {
        special.cls = cls;
        special.sep = sep;
    }
    let mut tokenizer = Tokenizer::new(
        vocab,
        normalizer,
        AddedVocabulary::new(added),
        template,
        special,
        max_chars,
    )
    .map_err(|err| error(origin, err))?;
    tokenizer.decoder = parse_decoder(root.get("decoder"), origin)?;
    Ok(tokenizer)
}

/// A special token in tokenizer_config.json: "x" or {"content": "x", ...}.
fn template_json(
    tokenizer: &Tokenizer,
    pieces: &[TemplatePiece],
    specials: &mut Map<String, Value>,
) -> Value {
    let items: Vec<Value> = pieces
        .iter()
        .map(|piece| match piece {
            TemplatePiece::Special { ids, type_id } => {
                let tokens: Vec<String> = ids
                    .iter()
                    .map(|&id| tokenizer.id_to_token(id).unwrap_or("").to_string())
                    .collect();
                let name = tokens.join("");
                specials.insert(
                    name.clone(),
                    json!({"id": name, "ids": ids, "tokens": tokens}),
                );
                json!({"SpecialToken": {"id": name, "type_id": type_id}})
            }
            TemplatePiece::Sequence { index, type_id } => {
                let id = if *index == 0 { "A" } else { "B" };
                json!({"Sequence": {"id": id, "type_id": type_id}})
            }
        })
        .collect();
    Value::Array(items)
}

/// The tokenizer as an HF tokenizer.json document.
pub fn to_tokenizer_json(tokenizer: &Tokenizer) -> Value {
    let added: Vec<Value> = tokenizer
        .added
        .tokens()
        .iter()
        .map(|token| {
            json!({
                "id": token.id, "content": token.content, "single_word": token.single_word,
                "lstrip": token.lstrip, "rstrip": token.rstrip,
                "normalized": token.normalized, "special": token.special,
            })
        })
        .collect();
    let options = tokenizer.normalizer;
    let mut specials = Map::new();
    let single = template_json(tokenizer, &tokenizer.template.single, &mut specials);
    let pair = template_json(tokenizer, &tokenizer.template.pair, &mut specials);
    let vocab: Map<String, Value> = tokenizer
        .vocab
        .pairs()
        .into_iter()
        .map(|(token, id)| (token.to_string(), json!(id)))
        .collect();
    let decoder = tokenizer
        .decoder
        .as_ref()
        .map_or(Value::Null, |decoder| {
            json!({"type": "WordPiece", "prefix": decoder.prefix, "cleanup": decoder.cleanup})
        });
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {
            "type": "BertNormalizer", "clean_text": options.clean_text,
            "handle_chinese_chars": options.handle_chinese_chars,
            "strip_accents": options.strip_accents, "lowercase": options.lowercase,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing", "single": single, "pair": pair,
            "special_tokens": specials,
        },
        "decoder": decoder,
        "model": {
            "type": "WordPiece", "unk_token": tokenizer.special.unk,
            "continuing_subword_prefix": tokenizer.vocab.prefix(),
            "max_input_chars_per_word": tokenizer.model.max_input_chars_per_word,
            "vocab": vocab,
        },
    })
}
