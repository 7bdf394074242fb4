//! The BERT normalizer: clean text, space out CJK ideographs, strip accents
//! (NFD, then drop non-spacing marks), lowercase.
//!
//! Mirrors HF tokenizers `normalizers/bert.rs`. Instead of building a
//! normalized string with an alignment table, it streams normalized chars to a
//! sink together with the index (in chars) of the original char each comes
//! from: every normalized char comes from exactly one original char, so that
//! index is all the offsets need.
//!
//! Character classes use the tables HF uses: `unicode_categories` (an old
//! Unicode version) for control / punctuation / non-spacing marks, and
//! `unicode-normalization-alignments` (Unicode 9) for NFD. Newer tables would
//! give different ids on recent characters.

use std::sync::OnceLock;

use unicode_categories::UnicodeCategories;
use unicode_normalization_alignments::char::{canonical_combining_class, decompose_canonical};

/// The options of HF's `BertNormalizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormalizerOptions {
    /// Drop NUL, U+FFFD and control chars; map whitespace to ' '.
    pub clean_text: bool,
    /// Put spaces around CJK ideographs so each is a word.
    pub handle_chinese_chars: bool,
    /// NFD then drop non-spacing marks; `None` follows `lowercase`.
    pub strip_accents: Option<bool>,
    pub lowercase: bool,
}

impl Default for NormalizerOptions {
    fn default() -> Self {
        NormalizerOptions {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: None,
            lowercase: true,
        }
    }
}

impl NormalizerOptions {
    /// Whether accents are stripped (`strip_accents` follows `lowercase` unless set).
    pub fn strips_accents(&self) -> bool {
        self.strip_accents.unwrap_or(self.lowercase)
    }
}

const CONTROL: u8 = 1;
const PUNCTUATION: u8 = 2;
const NONSPACING_MARK: u8 = 4;
const WHITESPACE: u8 = 8;
const CHINESE: u8 = 16;

/// HF `is_control`: categories Cc, Cf, Co (old tables) except \t \n \r.
fn compute_is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// HF `is_bert_punc`: ASCII punctuation or a Unicode P* category (old tables).
fn compute_is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// HF `is_chinese_char`: the fixed CJK ranges of the original BERT code.
pub fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

fn compute_flags(c: char) -> u8 {
    let mut flags = 0;
    if compute_is_control(c) {
        flags |= CONTROL;
    }
    if compute_is_punctuation(c) {
        flags |= PUNCTUATION;
    }
    if c.is_mark_nonspacing() {
        flags |= NONSPACING_MARK;
    }
    if c.is_whitespace() {
        flags |= WHITESPACE;
    }
    if is_chinese_char(c) {
        flags |= CHINESE;
    }
    flags
}

/// Class flags of every char of the Basic Multilingual Plane, computed once
/// (the category tables are binary searches; this is one load).
fn bmp_flags() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0u32..0x10000)
            .map(|code| char::from_u32(code).map_or(0, compute_flags))
            .collect()
    })
}

#[inline]
fn flags(c: char) -> u8 {
    match bmp_flags().get(c as usize) {
        Some(&flags) => flags,
        None => compute_flags(c),
    }
}

/// A control char as HF's BERT normalizer sees it.
pub fn is_control(c: char) -> bool {
    flags(c) & CONTROL != 0
}

/// Punctuation as HF's BERT pre-tokenizer sees it.
pub fn is_punctuation(c: char) -> bool {
    flags(c) & PUNCTUATION != 0
}

/// Whitespace as HF sees it (`char::is_whitespace`; \t \n \r included).
pub fn is_whitespace(c: char) -> bool {
    flags(c) & WHITESPACE != 0
}

/// Where normalized chars go: the char and the index of the original char.
pub trait Sink {
    fn push(&mut self, c: char, origin: u32);
}

/// Streams the normalized form of a text. Holds the combining marks waiting
/// for canonical reordering, so one instance is reused across texts.
#[derive(Debug, Default)]
pub struct Normalizer {
    pub options: NormalizerOptions,
    /// Decomposed marks (ccc != 0) not yet reordered.
    pending: Vec<Pending>,
    /// Origins of the pending marks that start a decomposition, in text order.
    queue: Vec<u32>,
    /// Origin of the last char NFD consumed (see `flush`).
    last_origin: u32,
}

/// A combining mark waiting for canonical reordering.
#[derive(Clone, Copy, Debug)]
struct Pending {
    part: char,
    origin: u32,
    class: u8,
    /// First char of its decomposition (HF change 0) or added after it (+1).
    first: bool,
}

impl Normalizer {
    pub fn new(options: NormalizerOptions) -> Self {
        Normalizer {
            options,
            pending: Vec::new(),
            queue: Vec::new(),
            last_origin: 0,
        }
    }

    /// Normalize `text`, whose first char has index `first_origin` in the
    /// original string, into `sink`.
    pub fn run<S: Sink>(&mut self, text: &str, first_origin: u32, sink: &mut S) {
        let strip = self.options.strips_accents();
        for (origin, c) in (first_origin..).zip(text.chars()) {
            if c.is_ascii() {
                self.ascii(c, origin, strip, sink);
            } else {
                self.non_ascii(c, origin, strip, sink);
            }
        }
        self.flush(strip, sink);
    }

    #[inline]
    fn ascii<S: Sink>(&mut self, c: char, origin: u32, strip: bool, sink: &mut S) {
        let options = self.options;
        if options.clean_text && (c == '\0' || is_control(c)) {
            return;
        }
        if !self.pending.is_empty() {
            self.flush(strip, sink);
        }
        self.last_origin = origin;
        let c = if options.clean_text && is_whitespace(c) {
            ' '
        } else if options.lowercase {
            c.to_ascii_lowercase()
        } else {
            c
        };
        sink.push(c, origin);
    }

    fn non_ascii<S: Sink>(&mut self, c: char, origin: u32, strip: bool, sink: &mut S) {
        let options = self.options;
        if options.clean_text {
            if c == '\u{FFFD}' || is_control(c) {
                return;
            }
            if is_whitespace(c) {
                self.flush(strip, sink);
                self.last_origin = origin;
                sink.push(' ', origin);
                return;
            }
        }
        let chinese = options.handle_chinese_chars && is_chinese_char(c);
        if chinese {
            self.flush(strip, sink);
            self.last_origin = origin;
            sink.push(' ', origin);
        }
        if strip {
            let mut first = true;
            decompose_canonical(c, |part| {
                let class = canonical_combining_class(part);
                if class == 0 {
                    self.flush(strip, sink);
                    self.last_origin = origin;
                    self.finish(part, origin, strip, sink);
                } else {
                    self.pending.push(Pending {
                        part,
                        origin,
                        class,
                        first,
                    });
                }
                first = false;
            });
        } else {
            self.finish(c, origin, strip, sink);
        }
        if chinese {
            self.flush(strip, sink);
            sink.push(' ', origin);
        }
    }

    /// Emit the pending marks in canonical order (a stable sort by class).
    ///
    /// Origins follow HF's alignment of a transform, which is positional: the
    /// k-th char that starts a decomposition gets the origin of the k-th
    /// consumed char, in text order, and a char added by a decomposition
    /// gets the origin of the last consumed char. After reordering, a mark
    /// may so take the origin of the mark it swapped places with.
    fn flush<S: Sink>(&mut self, strip: bool, sink: &mut S) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        let mut queue = std::mem::take(&mut self.queue);
        queue.clear();
        queue.extend(
            pending
                .iter()
                .filter(|mark| mark.first)
                .map(|mark| mark.origin),
        );
        pending.sort_by_key(|mark| mark.class);
        let mut consumed = queue.iter();
        let mut last = self.last_origin;
        for mark in &pending {
            if mark.first {
                last = consumed.next().copied().unwrap_or(mark.origin);
            }
            self.finish(mark.part, last, strip, sink);
        }
        self.last_origin = last;
        pending.clear();
        self.pending = pending;
        self.queue = queue;
    }

    /// After NFD: drop non-spacing marks, then lowercase.
    #[inline]
    fn finish<S: Sink>(&self, c: char, origin: u32, strip: bool, sink: &mut S) {
        if strip && flags(c) & NONSPACING_MARK != 0 {
            return;
        }
        if self.options.lowercase {
            for lower in c.to_lowercase() {
                sink.push(lower, origin);
            }
        } else {
            sink.push(c, origin);
        }
    }
}

/// Normalize a whole string (for tests and debugging).
pub fn normalize(options: NormalizerOptions, text: &str) -> (String, Vec<u32>) {
    struct Collect(String, Vec<u32>);
    impl Sink for Collect {
        fn push(&mut self, c: char, origin: u32) {
            self.0.push(c);
            self.1.push(origin);
        }
    }
    let mut collect = Collect(String::new(), Vec::new());
    Normalizer::new(options).run(text, 0, &mut collect);
    (collect.0, collect.1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn uncased() -> NormalizerOptions {
        NormalizerOptions::default()
    }

    #[test]
    fn clean_text_drops_controls_and_maps_whitespace() {
        let (text, origins) = normalize(uncased(), "a\0b\u{FFFD}c\td\u{200B}e\u{0B}f\u{3000}g");
        // U+200B (Cf) and VT (Cc) are dropped; tab and ideographic space become ' '.
        assert_eq!(text, "abc def g");
        assert_eq!(origins, vec![0, 2, 4, 5, 6, 8, 10, 11, 12]);
    }

    #[test]
    fn strips_accents_and_lowercases() {
        let (text, origins) = normalize(uncased(), "Ça Déjà İ");
        assert_eq!(text, "ca deja i");
        assert_eq!(origins, vec![0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn lowercase_without_strip_keeps_marks() {
        let options = NormalizerOptions {
            strip_accents: Some(false),
            ..uncased()
        };
        let (text, origins) = normalize(options, "Éİ");
        assert_eq!(text, "éi\u{307}");
        assert_eq!(origins, vec![0, 1, 1]);
    }

    #[test]
    fn cased_keeps_everything() {
        let options = NormalizerOptions {
            lowercase: false,
            ..uncased()
        };
        let (text, _) = normalize(options, "Ça Déjà");
        assert_eq!(text, "Ça Déjà");
    }

    #[test]
    fn chinese_chars_are_spaced() {
        let (text, origins) = normalize(uncased(), "ab中c");
        assert_eq!(text, "ab 中 c");
        assert_eq!(origins, vec![0, 1, 2, 2, 2, 3]);
    }

    #[test]
    fn hangul_decomposes_to_jamo() {
        let (text, origins) = normalize(uncased(), "한");
        assert_eq!(text.chars().count(), 3);
        assert_eq!(origins, vec![0, 0, 0]);
    }

    #[test]
    fn marks_are_reordered_across_chars() {
        // a + acute (230) + grave below (220): NFD puts the 220 mark first.
        let options = NormalizerOptions {
            strip_accents: Some(false),
            lowercase: false,
            ..uncased()
        };
        let (text, _) = normalize(options, "a\u{301}\u{316}");
        assert_eq!(text, "a\u{301}\u{316}");
        let options = NormalizerOptions {
            lowercase: false,
            strip_accents: Some(true),
            ..uncased()
        };
        // Two spacing marks (kept by strip_accents) with classes 226 then 216.
        // Origins are positional, as HF's transform aligns them.
        let (text, origins) = normalize(options, "x\u{1D16D}\u{1D165}");
        assert_eq!(text, "x\u{1D165}\u{1D16D}");
        assert_eq!(origins, vec![0, 1, 2]);
    }

    #[test]
    fn classes_match_hf_definitions() {
        assert!(is_punctuation('$') && is_punctuation('¿') && is_punctuation('、'));
        assert!(!is_punctuation('a') && !is_punctuation('€'));
        assert!(is_control('\u{200B}') && !is_control('\t'));
        assert!(is_whitespace('\u{2028}') && is_whitespace('\n'));
        assert!(is_chinese_char('中') && !is_chinese_char('한'));
    }
}
