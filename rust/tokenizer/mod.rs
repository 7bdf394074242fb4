//! The BERT WordPiece tokenizer (normalizer, pre-tokenizer, WordPiece), with
//! offsets carried through every stage. Mirrors HF tokenizers' BERT pipeline:
//!
//! raw text -> added tokens split out ([`added`]) -> normalize ([`normalize`])
//! -> words ([`pretokenize`]) -> pieces ([`wordpiece`], longest match by
//! [`trie`]) -> truncation ([`truncation`]) -> template ([`encoding`]) ->
//! padding ([`padding`]); [`options`] names the choices of a batch. Files:
//! [`files`], [`tokenizer_json`]; ids back to text: [`decode`].
//!
//! The stages are streamed (normalized chars go straight into the word
//! splitter, words straight into WordPiece) with buffers reused per thread,
//! so a text costs no allocation beyond its output.

pub mod added;
pub mod decode;
pub mod encoding;
pub mod files;
pub mod normalize;
pub mod options;
pub mod padding;
pub mod pretokenize;
pub mod tokenizer_json;
pub mod trie;
pub mod truncation;
pub mod vocab;
pub mod wordpiece;

use rayon::prelude::*;

pub use added::{AddedToken, AddedVocabulary, Piece};
pub use encoding::{EncodedToken, Encoding, Template, TemplatePiece};
pub use normalize::NormalizerOptions;
pub use options::{EncodeOptions, PaddingOptions};
pub use padding::{Padding, PaddingLength};
pub use truncation::{Truncation, TruncationStrategy};
pub use vocab::Vocab;
pub use wordpiece::{Token, WordPiece};

use crate::error::{Error, Result};
use normalize::Normalizer;
use pretokenize::{WordBuffer, WordSplitter};

/// The special tokens a BERT model uses, by role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub unk: String,
    pub sep: String,
    pub cls: String,
    pub pad: String,
    pub mask: String,
}

impl Default for SpecialTokens {
    fn default() -> Self {
        SpecialTokens {
            unk: "[UNK]".into(),
            sep: "[SEP]".into(),
            cls: "[CLS]".into(),
            pad: "[PAD]".into(),
            mask: "[MASK]".into(),
        }
    }
}

/// How `decode` joins tokens (HF `decoders.WordPiece`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderOptions {
    pub prefix: String,
    pub cleanup: bool,
}

/// A BERT WordPiece tokenizer.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    pub(crate) vocab: Vocab,
    pub(crate) model: WordPiece,
    pub(crate) normalizer: NormalizerOptions,
    pub(crate) added: AddedVocabulary,
    pub(crate) template: Template,
    /// `None`: tokens joined with spaces (no decoder in tokenizer.json).
    pub(crate) decoder: Option<DecoderOptions>,
    pub(crate) special: SpecialTokens,
    /// The most tokens the model takes (None: unknown).
    pub(crate) model_max_length: Option<usize>,
}

/// Per-thread scratch space.
#[derive(Debug, Default)]
pub struct Workspace {
    normalizer: Normalizer,
    words: WordBuffer,
    pieces: Vec<Piece>,
    /// Tokens of the first and second text, reused across inputs.
    first: Vec<Token>,
    second: Vec<Token>,
}

/// One input: a text or a pair of texts.
pub type Input<'a> = (&'a str, Option<&'a str>);

impl Tokenizer {
    /// Assemble a tokenizer from its parts. `special` names the role tokens;
    /// `[UNK]` must be in the vocabulary.
    pub fn new(
        vocab: Vocab,
        normalizer: NormalizerOptions,
        added: AddedVocabulary,
        template: Template,
        special: SpecialTokens,
        max_input_chars_per_word: usize,
    ) -> Result<Self> {
        let unk_id = vocab
            .id(&special.unk)
            .or_else(|| added.by_content(&special.unk).map(|token| token.id))
            .ok_or_else(|| {
                Error::Tokenizer(format!(
                    "the unknown token '{}' is not in the vocabulary",
                    special.unk
                ))
            })?;
        Ok(Tokenizer {
            vocab,
            model: WordPiece {
                unk_id,
                max_input_chars_per_word,
            },
            normalizer,
            added,
            template,
            decoder: Some(DecoderOptions {
                prefix: "##".into(),
                cleanup: true,
            }),
            special,
            model_max_length: None,
        })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn normalizer_options(&self) -> NormalizerOptions {
        self.normalizer
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    pub fn added_tokens(&self) -> &[AddedToken] {
        self.added.tokens()
    }

    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    pub fn set_model_max_length(&mut self, length: Option<usize>) {
        self.model_max_length = length;
    }

    pub fn max_input_chars_per_word(&self) -> usize {
        self.model.max_input_chars_per_word
    }

    /// Id of a token (added tokens first, as HF).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added
            .by_content(token)
            .map(|added| added.id)
            .or_else(|| self.vocab.id(token))
    }

    /// Token of an id.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.added
            .by_id(id)
            .map(|added| added.content.as_str())
            .or_else(|| self.vocab.token(id))
    }

    /// One more than the largest id, added tokens included.
    pub fn vocab_size(&self) -> usize {
        let added = self
            .added
            .tokens()
            .iter()
            .map(|token| token.id as usize + 1);
        added.max().unwrap_or(0).max(self.vocab.size())
    }

    /// Tokens of one text, no special tokens added, appended to `out`.
    pub fn tokenize_into(&self, text: &str, workspace: &mut Workspace, out: &mut Vec<Token>) {
        let Workspace {
            normalizer,
            words,
            pieces,
            ..
        } = workspace;
        normalizer.options = self.normalizer;
        self.added.split(text, pieces);
        let mut origin: u32 = 0;
        let mut done = 0;
        for &piece in pieces.iter() {
            let (start, end) = match piece {
                Piece::Text(start, end) | Piece::Token(_, start, end) => (start, end),
            };
            origin = origin.saturating_add(char_count(text.get(done..start).unwrap_or("")));
            let slice = text.get(start..end).unwrap_or("");
            let length = char_count(slice);
            match piece {
                Piece::Token(id, _, _) => out.push(Token {
                    id,
                    start: origin,
                    end: origin.saturating_add(length),
                }),
                Piece::Text(..) => {
                    let mut splitter = WordSplitter::new(words, |word: &str, origins: &[u32]| {
                        self.model.tokenize(&self.vocab, word, origins, out);
                    });
                    normalizer.run(slice, origin, &mut splitter);
                    splitter.finish();
                }
            }
            origin = origin.saturating_add(length);
            done = end;
        }
    }

    /// Tokens of one text (no special tokens).
    pub fn tokenize(&self, text: &str) -> Vec<Token> {
        let mut out = Vec::new();
        self.tokenize_into(text, &mut Workspace::default(), &mut out);
        out
    }

    /// Encode a text or pair: tokens, truncation, template.
    pub fn encode_with(
        &self,
        input: Input<'_>,
        add_special_tokens: bool,
        truncation: Option<Truncation>,
        workspace: &mut Workspace,
    ) -> Result<Encoding> {
        let (text, pair) = input;
        for part in std::iter::once(text).chain(pair) {
            if part.len() >= u32::MAX as usize {
                return Err(Error::Tokenizer(format!(
                    "a text of {} bytes is too long (offsets are 32-bit)",
                    part.len()
                )));
            }
        }
        let mut first = std::mem::take(&mut workspace.first);
        let mut second_buffer = std::mem::take(&mut workspace.second);
        first.clear();
        second_buffer.clear();
        self.tokenize_into(text, workspace, &mut first);
        let mut second = pair.map(|pair| {
            self.tokenize_into(pair, workspace, &mut second_buffer);
            second_buffer
        });
        let encoding = self.finish_encoding(
            first.as_mut(),
            second.as_mut(),
            add_special_tokens,
            truncation,
        );
        workspace.first = first;
        if let Some(second) = second {
            workspace.second = second;
        }
        encoding
    }

    /// Truncate and apply the template.
    fn finish_encoding(
        &self,
        first: &mut Vec<Token>,
        mut second: Option<&mut Vec<Token>>,
        add_special_tokens: bool,
        truncation: Option<Truncation>,
    ) -> Result<Encoding> {
        if let Some(truncation) = truncation {
            let added = if add_special_tokens {
                self.template.added_tokens(second.is_some())
            } else {
                0
            };
            let max_length = truncation.max_length.checked_sub(added).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "max_length {} leaves no room for the {added} special tokens",
                    truncation.max_length
                ))
            })?;
            truncation::truncate(
                first,
                second.as_deref_mut(),
                max_length,
                truncation.strategy,
            )?;
        }
        Ok(self.template.apply(
            first,
            second.as_deref().map(Vec::as_slice),
            add_special_tokens,
        ))
    }

    /// Encode one text or pair.
    pub fn encode(
        &self,
        input: Input<'_>,
        add_special_tokens: bool,
        truncation: Option<Truncation>,
    ) -> Result<Encoding> {
        self.encode_with(
            input,
            add_special_tokens,
            truncation,
            &mut Workspace::default(),
        )
    }

    /// Encode a batch on the oxiformer thread pool, then pad. The result does
    /// not depend on the number of threads.
    pub fn encode_batch(
        &self,
        inputs: &[Input<'_>],
        add_special_tokens: bool,
        truncation: Option<Truncation>,
        padding: Option<Padding>,
    ) -> Result<Vec<Encoding>> {
        let encode = |workspace: &mut Workspace, input: &Input<'_>| {
            self.encode_with(*input, add_special_tokens, truncation, workspace)
        };
        let mut encodings = if inputs.len() < 2 {
            let mut workspace = Workspace::default();
            inputs
                .iter()
                .map(|input| encode(&mut workspace, input))
                .collect::<Result<Vec<_>>>()?
        } else {
            crate::threads::run(|| {
                inputs
                    .par_iter()
                    .with_min_len(8)
                    .map_init(Workspace::default, encode)
                    .collect::<Result<Vec<_>>>()
            })??
        };
        if let Some(padding) = padding {
            padding::pad(&mut encodings, &padding)?;
        }
        Ok(encodings)
    }

    /// Encode a batch with `options`; padding uses this tokenizer's pad token.
    pub fn encode_batch_with(
        &self,
        inputs: &[Input<'_>],
        options: &EncodeOptions,
    ) -> Result<Vec<Encoding>> {
        let padding = options
            .padding
            .map(|padding| self.padding(padding))
            .transpose()?;
        self.encode_batch(
            inputs,
            options.add_special_tokens,
            options.truncation,
            padding,
        )
    }

    /// The padding `options` ask for, with this tokenizer's pad token.
    pub fn padding(&self, options: PaddingOptions) -> Result<Padding> {
        let pad_id = self.pad_token_id().ok_or_else(|| {
            Error::Tokenizer(format!(
                "padding needs a pad token, and '{}' is not in the vocabulary",
                self.special.pad
            ))
        })?;
        Ok(Padding {
            length: options.length,
            pad_to_multiple_of: options.pad_to_multiple_of,
            pad_id,
            pad_type_id: 0,
        })
    }

    /// The pad token id (None if the vocabulary has no pad token).
    pub fn pad_token_id(&self) -> Option<u32> {
        self.token_to_id(&self.special.pad)
    }

    /// Number of special tokens the template adds to a text or a pair.
    pub fn added_special_count(&self, pair: bool) -> usize {
        self.template.added_tokens(pair)
    }

    /// Whether `id` is a special token (skipped by `decode`).
    pub fn is_special_id(&self, id: u32) -> bool {
        self.added.by_id(id).is_some_and(|token| token.special)
    }
}

#[inline]
fn char_count(text: &str) -> u32 {
    let count = if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    };
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
