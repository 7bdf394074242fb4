//! What a generation keeps between decoding steps: the encoder's output as the decoder's
//! cross-attention reads it ([`Memory`], once per input) and the key/value cache of every
//! row ([`DecoderState`]).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::nn::cross_attention::{CrossMemory, SourceKeys};
use crate::nn::kv_cache::KvCache;
use crate::threads;

/// The encoder's output as the decoder reads it: per layer, the cross-attention's keys and
/// values of every source, and which keys each source shows.
#[derive(Debug, Clone)]
pub struct Memory {
    pub(crate) layers: Vec<CrossMemory>,
    pub(crate) sources: Vec<SourceKeys>,
}

impl Memory {
    pub fn batch(&self) -> usize {
        self.sources.len()
    }
}

/// One generation's state: the memory, a key/value cache of `batch * beams` rows (beam `k`
/// of source `b` is row `b * beams + k`, as in HF).
#[derive(Debug, Clone)]
pub struct DecoderState {
    pub(crate) memory: Arc<Memory>,
    pub(crate) cache: KvCache,
    pub(crate) beams: usize,
    pub(crate) row_sources: Vec<usize>,
}

impl DecoderState {
    pub fn rows(&self) -> usize {
        self.row_sources.len()
    }

    /// Tokens cached per row.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Forget the cached tokens (the memory stays): the next step starts from position 0.
    pub fn reset(&mut self) {
        self.cache.clear();
    }

    /// Row `r` continues what row `rows[r]` was (beam search's choice of beams); a beam
    /// stays with its source.
    pub fn reorder(&mut self, rows: &[i64]) -> Result<()> {
        let total = self.rows();
        let mut sources = Vec::with_capacity(rows.len());
        for (row, &from) in rows.iter().enumerate() {
            let from = usize::try_from(from)
                .ok()
                .filter(|&from| from < total)
                .ok_or_else(|| {
                    Error::input(format!(
                        "beam index {from} at position {row} is outside [0, {total})"
                    ))
                })?;
            if from / self.beams != row / self.beams {
                return Err(Error::input(format!(
                    "beam index {from} at position {row} belongs to another input (beams of an input stay together)"
                )));
            }
            sources.push(from);
        }
        threads::run(|| self.cache.reorder(&sources))?
    }
}
