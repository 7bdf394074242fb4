//! Loading and saving tokenizer files: `vocab.txt`, HF `tokenizer.json`,
//! `tokenizer_config.json` (and `config.json` for the model's max length).
//!
//! The tokenizer files decide the normalization (tokenizer.json first, else
//! vocab.txt with tokenizer_config.json's flags). tokenizer.json's own
//! `truncation` / `padding` sections are ignored, as transformers does: the
//! call's arguments decide. Errors name the file.

use std::path::Path;

use serde_json::{json, Value};

pub use super::tokenizer_json::from_tokenizer_json;
use super::tokenizer_json::{
    error, get_bool, get_optional_bool, to_tokenizer_json, MAX_INPUT_CHARS_PER_WORD,
};
use super::{
    AddedToken, AddedVocabulary, NormalizerOptions, SpecialTokens, Template, Tokenizer, Vocab,
};
use crate::error::{Error, Result};

/// Largest tokenizer or configuration file read (the tokenizer.json of a
/// 250,000-token vocabulary is about 20 MB): a device such as `/dev/zero`
/// behind a file name would otherwise be read until memory runs out.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// What a file that is not a regular file is, for messages.
fn kind(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The text of a regular file (a symlink to one is fine) of at most
/// `MAX_FILE_BYTES`: a FIFO is refused before it is opened (it would block),
/// a device before it is read.
fn read_text(path: &Path) -> Result<String> {
    let origin = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|err| error(&origin, err))?;
    if !metadata.is_file() {
        let what = kind(metadata.file_type());
        return Err(error(&origin, format!("is {what}, not a regular file")));
    }
    let file = std::fs::File::open(path).map_err(|err| error(&origin, err))?;
    let opened = file.metadata().map_err(|err| error(&origin, err))?;
    if !opened.is_file() || opened.len() > MAX_FILE_BYTES {
        return Err(error(
            &origin,
            format!("is not a regular file of at most {MAX_FILE_BYTES} bytes"),
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut text)
        .map_err(|err| error(&origin, err))?;
    Ok(text)
}

fn read_json(path: &Path) -> Result<Value> {
    let origin = path.display().to_string();
    serde_json::from_str(&read_text(path)?).map_err(|err| error(&origin, err))
}

/// A BERT tokenizer over `vocab`, as HF's `BertWordPieceTokenizer`: the role
/// tokens present in the vocabulary are special added tokens.
pub fn bert_from_vocab(vocab: Vocab, options: NormalizerOptions) -> Result<Tokenizer> {
    bert_with_specials(vocab, options, SpecialTokens::default(), "vocabulary")
}

fn bert_with_specials(
    vocab: Vocab,
    options: NormalizerOptions,
    special: SpecialTokens,
    origin: &str,
) -> Result<Tokenizer> {
    let roles = [
        &special.unk,
        &special.sep,
        &special.cls,
        &special.pad,
        &special.mask,
    ];
    let added: Vec<AddedToken> = roles
        .iter()
        .filter_map(|token| vocab.id(token).map(|id| AddedToken::special(token, id)))
        .collect();
    let id_of = |token: &str| {
        vocab.id(token).ok_or_else(|| {
            error(
                origin,
                format!("the token '{token}' is not in the vocabulary"),
            )
        })
    };
    let template = Template::bert(id_of(&special.cls)?, id_of(&special.sep)?);
    Tokenizer::new(
        vocab,
        options,
        AddedVocabulary::new(added),
        template,
        special,
        MAX_INPUT_CHARS_PER_WORD,
    )
    .map_err(|err| error(origin, err))
}

/// Load a `vocab.txt`.
pub fn from_vocab_file(path: &Path, options: NormalizerOptions) -> Result<Tokenizer> {
    let origin = path.display().to_string();
    let vocab = Vocab::from_vocab_txt(&read_text(path)?, "##", &origin)?;
    bert_with_specials(vocab, options, SpecialTokens::default(), &origin)
}

fn config_token(config: &Value, key: &str) -> Option<String> {
    match config.get(key)? {
        Value::String(token) => Some(token.clone()),
        Value::Object(object) => object.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// A length that means something (transformers writes 1e30 for "no limit").
fn config_length(config: &Value, key: &str) -> Option<usize> {
    let value = config.get(key)?;
    let length = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|length| length.is_finite() && *length >= 0.0 && *length < 1e15)
            .map(|length| length as u64)
    })?;
    usize::try_from(length)
        .ok()
        .filter(|&length| length < 1 << 40)
}

/// Whether something (a file, a link, a FIFO...) is at `path`: what is there
/// is read, or refused with an error, never silently skipped.
fn present(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Load a model directory: tokenizer.json if present, else vocab.txt with
/// tokenizer_config.json's flags; the max length from tokenizer_config.json
/// and config.json (the smaller of `model_max_length` and
/// `max_position_embeddings`).
pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
    let config_path = dir.join("tokenizer_config.json");
    let config = if present(&config_path) {
        read_json(&config_path)?
    } else {
        json!({})
    };
    let config_origin = config_path.display().to_string();
    let tokenizer_json = dir.join("tokenizer.json");
    let vocab_txt = dir.join("vocab.txt");
    let mut tokenizer = if present(&tokenizer_json) {
        let origin = tokenizer_json.display().to_string();
        from_tokenizer_json(&read_text(&tokenizer_json)?, &origin)?
    } else if present(&vocab_txt) {
        let lowercase = get_bool(&config, "do_lower_case", true, &config_origin)?;
        let options = NormalizerOptions {
            clean_text: true,
            handle_chinese_chars: get_bool(
                &config,
                "tokenize_chinese_chars",
                true,
                &config_origin,
            )?,
            strip_accents: get_optional_bool(&config, "strip_accents", &config_origin)?,
            lowercase,
        };
        let origin = vocab_txt.display().to_string();
        let vocab = Vocab::from_vocab_txt(&read_text(&vocab_txt)?, "##", &origin)?;
        let defaults = SpecialTokens::default();
        let special = SpecialTokens {
            unk: config_token(&config, "unk_token").unwrap_or(defaults.unk),
            sep: config_token(&config, "sep_token").unwrap_or(defaults.sep),
            cls: config_token(&config, "cls_token").unwrap_or(defaults.cls),
            pad: config_token(&config, "pad_token").unwrap_or(defaults.pad),
            mask: config_token(&config, "mask_token").unwrap_or(defaults.mask),
        };
        bert_with_specials(vocab, options, special, &origin)?
    } else {
        return Err(Error::Tokenizer(format!(
            "{}: no tokenizer.json or vocab.txt in this directory",
            dir.display()
        )));
    };
    if let Some(pad) = config_token(&config, "pad_token") {
        tokenizer.special.pad = pad;
    }
    if let Some(mask) = config_token(&config, "mask_token") {
        tokenizer.special.mask = mask;
    }
    let model_config = dir.join("config.json");
    let positions = if present(&model_config) {
        config_length(&read_json(&model_config)?, "max_position_embeddings")
    } else {
        None
    };
    let declared = config_length(&config, "model_max_length");
    tokenizer.model_max_length = match (declared, positions) {
        (Some(declared), Some(positions)) => Some(declared.min(positions)),
        (declared, positions) => declared.or(positions),
    };
    Ok(tokenizer)
}

/// Write `text` to `path` through a temporary file in the same directory,
/// synced and then renamed over `path`: a failure (full disk, file-size limit)
/// leaves the previous file as it was and no temporary file behind.
fn write(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let origin = path.display().to_string();
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = path.with_file_name(format!(".{name}.{}-{unique}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    written.map_err(|err| {
        let _ = std::fs::remove_file(&temporary);
        error(
            &origin,
            format!("cannot write ({err}; the file is unchanged)"),
        )
    })
}

/// Write vocab.txt, tokenizer.json and tokenizer_config.json into `dir`
/// (created if needed); `from_dir` loads them back to the same tokenizer.
pub fn save(tokenizer: &Tokenizer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|err| error(&dir.display().to_string(), err))?;
    let mut vocab_txt = String::new();
    for id in 0..tokenizer.vocab.size() {
        let id = u32::try_from(id).unwrap_or(u32::MAX);
        vocab_txt.push_str(tokenizer.vocab.token(id).unwrap_or(""));
        vocab_txt.push('\n');
    }
    write(&dir.join("vocab.txt"), &vocab_txt)?;
    let as_text = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    write(
        &dir.join("tokenizer.json"),
        &as_text(&to_tokenizer_json(tokenizer)),
    )?;
    let options = tokenizer.normalizer;
    let special = &tokenizer.special;
    let mut config = json!({
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": options.lowercase,
        "strip_accents": options.strip_accents,
        "tokenize_chinese_chars": options.handle_chinese_chars,
        "unk_token": special.unk, "sep_token": special.sep, "cls_token": special.cls,
        "pad_token": special.pad, "mask_token": special.mask,
    });
    if let (Some(length), Some(object)) = (tokenizer.model_max_length, config.as_object_mut()) {
        object.insert("model_max_length".into(), json!(length));
    }
    write(&dir.join("tokenizer_config.json"), &as_text(&config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\n";

    #[test]
    fn save_and_load_round_trip() {
        let vocab = Vocab::from_vocab_txt(VOCAB, "##", "t").unwrap();
        let mut tokenizer = bert_from_vocab(vocab, NormalizerOptions::default()).unwrap();
        tokenizer.model_max_length = Some(7);
        let dir = std::env::temp_dir().join(format!("oxiformer-tok-{}", std::process::id()));
        save(&tokenizer, &dir).unwrap();
        let loaded = from_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.model_max_length, Some(7));
        assert_eq!(loaded.template, tokenizer.template);
        assert_eq!(loaded.normalizer, tokenizer.normalizer);
        assert_eq!(loaded.added.tokens(), tokenizer.added.tokens());
        let text = ("HELLOs [MASK] hello", Some("x"));
        assert_eq!(
            loaded.encode(text, true, None).unwrap(),
            tokenizer.encode(text, true, None).unwrap()
        );
    }

    #[test]
    fn errors_name_the_file() {
        let err = from_tokenizer_json("{\"model\": {\"type\": \"BPE\"}}", "x/tokenizer.json")
            .unwrap_err();
        assert!(err.to_string().contains("x/tokenizer.json"));
        let err = from_tokenizer_json("not json", "y.json").unwrap_err();
        assert!(err.to_string().starts_with("y.json"));
        let err = from_dir(Path::new("/nonexistent-dir")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"));
    }
}
