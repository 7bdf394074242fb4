//! Ids back to text, as HF tokenizers' `decode` with the WordPiece decoder
//! (`decoders/wordpiece.rs`): "##" pieces glue to the previous token, other
//! tokens get a space before them, then the cleanup of spaces before
//! punctuation and English contractions (per token, as HF does).

use super::Tokenizer;

/// HF `decoders::wordpiece::cleanup`.
pub fn cleanup(dirty: &str) -> String {
    dirty
        .replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

impl Tokenizer {
    /// Decode ids to text. Ids with no token are skipped (as HF); special
    /// tokens too when `skip_special_tokens`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let tokens = ids
            .iter()
            .filter(|&&id| !(skip_special_tokens && self.is_special_id(id)))
            .filter_map(|&id| self.id_to_token(id));
        let Some(decoder) = &self.decoder else {
            return tokens.collect::<Vec<_>>().join(" ");
        };
        let mut text = String::new();
        for (index, token) in tokens.enumerate() {
            let piece = if index == 0 {
                token.to_string()
            } else if let Some(rest) = token.strip_prefix(decoder.prefix.as_str()) {
                rest.to_string()
            } else {
                format!(" {token}")
            };
            if decoder.cleanup {
                text.push_str(&cleanup(&piece));
            } else {
                text.push_str(&piece);
            }
        }
        text
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{files, NormalizerOptions, Vocab};
    use super::*;

    #[test]
    fn joins_pieces_and_cleans_up() {
        let text = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\nworld\n.\ndon\n'\nt\n";
        let vocab = Vocab::from_vocab_txt(text, "##", "test").unwrap();
        let tokenizer = files::bert_from_vocab(vocab, NormalizerOptions::default()).unwrap();
        assert_eq!(tokenizer.decode(&[2, 5, 6, 7, 8, 3], true), "hellos world.");
        assert_eq!(tokenizer.decode(&[2, 5, 3], false), "[CLS] hello [SEP]");

        assert_eq!(tokenizer.decode(&[9, 99_999], true), "don");
        assert_eq!(cleanup(" do not"), " don't");
    }
}
