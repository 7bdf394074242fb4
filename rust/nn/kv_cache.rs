//! The key/value cache of a decoder's self-attention (HF `DynamicCache`): for every layer,
//! row (a sequence, or one beam of it) and head, the keys and values of the tokens so far,
//! packed as `nn::attend` reads them. Room for `capacity` tokens is taken once, so a new
//! token costs one store per head, not a copy of the prefix; beam search reorders rows.

use rayon::prelude::*;

use super::attend::{packed_sizes, store, PackedHead};
use crate::attention::AttentionShape;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
struct LayerCache {
    /// (rows, heads) blocks of K^T packed for `capacity` keys.
    keys_t: Vec<f32>,
    /// (rows, heads) blocks of V packed for `capacity` keys.
    values: Vec<f32>,
}

impl LayerCache {
    /// Zeroed buffers; an error, not an abort, when memory runs out (the sizes come from
    /// the caller's batch, beams and lengths).
    fn zeros(keys: usize, values: usize) -> Result<Self> {
        let zeroed = |len: usize| -> Result<Vec<f32>> {
            let mut buffer = Vec::new();
            buffer.try_reserve_exact(len).map_err(|_| {
                Error::input(format!(
                    "the key/value cache ({len} floats a layer) does not fit in memory"
                ))
            })?;
            buffer.resize(len, 0.0);
            Ok(buffer)
        };
        Ok(LayerCache {
            keys_t: zeroed(keys)?,
            values: zeroed(values)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// The other buffer of [`KvCache::reorder`] (allocated on first use).
    spare: Vec<LayerCache>,
    rows: usize,
    shape: AttentionShape,
    capacity: usize,
    len: usize,
}

impl KvCache {
    /// An empty cache of `layers` layers for `rows` rows of up to `capacity` tokens.
    pub fn new(layers: usize, rows: usize, shape: AttentionShape, capacity: usize) -> Result<Self> {
        let (keys, values) = packed_sizes(capacity, shape.head_size);
        let blocks = rows.checked_mul(shape.num_heads);
        let floats = |block: usize| {
            blocks
                .and_then(|blocks| blocks.checked_mul(block))
                .filter(|&floats| floats.saturating_mul(8 * layers.max(1)) < isize::MAX as usize)
                .ok_or_else(|| Error::input("the key/value cache would be too large"))
        };
        let (keys, values) = (floats(keys)?, floats(values)?);
        let layers = (0..layers)
            .map(|_| LayerCache::zeros(keys, values))
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            spare: Vec::new(),
            rows,
            shape,
            capacity,
            len: 0,
        })
    }

    /// Tokens cached per row.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forget every token (the decoder then runs without a cache).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Account for `tokens` tokens stored in every layer by [`KvCache::store`].
    pub fn advance(&mut self, tokens: usize) {
        self.len += tokens;
    }

    fn block_sizes(&self) -> (usize, usize) {
        packed_sizes(self.capacity, self.shape.head_size)
    }

    /// Store the keys and values of `tokens` tokens of every row at positions
    /// `len..len + tokens` of `layer`, from `qkv (rows * tokens, 3H)` (the fused projection:
    /// query, key, value columns, heads contiguous in each). Fails when the cache is full.
    pub fn store(&mut self, layer: usize, qkv: &[f32], tokens: usize) -> Result<()> {
        if self.len + tokens > self.capacity {
            return Err(Error::input(format!(
                "the key/value cache holds {} tokens per row, {} more do not fit after {}",
                self.capacity, tokens, self.len
            )));
        }
        let (heads, d) = (self.shape.num_heads, self.shape.head_size);
        let hidden = heads * d;
        let (key_block, value_block) = self.block_sizes();
        let (capacity, start) = (self.capacity, self.len);
        let cache = &mut self.layers[layer];
        cache
            .keys_t
            .par_chunks_mut(heads * key_block)
            .zip(cache.values.par_chunks_mut(heads * value_block))
            .enumerate()
            .for_each(|(row, (keys_t, values))| {
                for t in 0..tokens {
                    let fused = &qkv[(row * tokens + t) * 3 * hidden..][..3 * hidden];
                    for head in 0..heads {
                        let key = &fused[hidden + head * d..][..d];
                        let value = &fused[2 * hidden + head * d..][..d];
                        let keys_t = &mut keys_t[head * key_block..][..key_block];
                        let values = &mut values[head * value_block..][..value_block];
                        store(keys_t, values, capacity, start + t, key, value);
                    }
                }
            });
        Ok(())
    }

    /// The packed keys and values of (`layer`, `row`, `head`).
    pub fn head(&self, layer: usize, row: usize, head: usize) -> PackedHead<'_> {
        let (key_block, value_block) = self.block_sizes();
        let block = row * self.shape.num_heads + head;
        let cache = &self.layers[layer];
        PackedHead {
            keys_t: &cache.keys_t[block * key_block..][..key_block],
            values: &cache.values[block * value_block..][..value_block],
            capacity: self.capacity,
            head_size: self.shape.head_size,
        }
    }

    /// Row `r` becomes what row `sources[r]` was (beam search keeping its best beams, HF's
    /// `reorder_cache`). Only the cached tokens are copied.
    pub fn reorder(&mut self, sources: &[usize]) -> Result<()> {
        if sources.len() != self.rows {
            return Err(Error::input(format!(
                "reorder: {} row indices for {} rows",
                sources.len(),
                self.rows
            )));
        }
        if let Some(bad) = sources.iter().find(|&&source| source >= self.rows) {
            return Err(Error::input(format!(
                "reorder: row index {bad} outside [0, {})",
                self.rows
            )));
        }
        if sources
            .iter()
            .enumerate()
            .all(|(row, &source)| row == source)
        {
            return Ok(());
        }
        if self.spare.len() != self.layers.len() {
            self.spare = self
                .layers
                .iter()
                .map(|layer| LayerCache::zeros(layer.keys_t.len(), layer.values.len()))
                .collect::<Result<Vec<_>>>()?;
        }
        let (key_block, value_block) = self.block_sizes();
        let (heads, d, len, capacity) = (
            self.shape.num_heads,
            self.shape.head_size,
            self.len,
            self.capacity,
        );
        // Of a K^T block, the bands holding the first `len` keys; of each band of V, its
        // first `len` rows.
        let key_used = len.div_ceil(16) * d * 16;
        let value_bands = d.div_ceil(16);
        for (old, new) in self.layers.iter().zip(self.spare.iter_mut()) {
            new.keys_t
                .par_chunks_mut(heads * key_block)
                .zip(new.values.par_chunks_mut(heads * value_block))
                .zip(sources.par_iter())
                .for_each(|((keys_t, values), &source)| {
                    for head in 0..heads {
                        let from = (source * heads + head) * key_block;
                        keys_t[head * key_block..][..key_used]
                            .copy_from_slice(&old.keys_t[from..][..key_used]);
                        for band in 0..value_bands {
                            let offset = head * value_block + band * capacity * 16;
                            let from = source * heads * value_block + offset;
                            values[offset..][..len * 16]
                                .copy_from_slice(&old.values[from..][..len * 16]);
                        }
                    }
                });
        }
        std::mem::swap(&mut self.layers, &mut self.spare);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_reorders_rows() -> Result<()> {
        let shape = AttentionShape {
            num_heads: 2,
            head_size: 17,
        };
        let hidden = shape.hidden_size();
        let (rows, capacity) = (3, 40);
        let mut cache = KvCache::new(1, rows, shape, capacity)?;
        // Token t of row r: every key value r * 1000 + t, every value -(r * 1000 + t).
        for step in 0..20 {
            let mut qkv = vec![0.0f32; rows * 3 * hidden];
            for (row, fused) in qkv.chunks_exact_mut(3 * hidden).enumerate() {
                let id = (row * 1000 + step) as f32;
                fused[hidden..2 * hidden].fill(id);
                fused[2 * hidden..].fill(-id);
            }
            cache.store(0, &qkv, 1)?;
            cache.advance(1);
        }
        cache.reorder(&[2, 2, 0])?;
        for (row, source) in [(0, 2), (1, 2), (2, 0)] {
            for head in 0..2 {
                let packed = cache.head(0, row, head);
                for t in 0..20 {
                    let id = (source * 1000 + t) as f32;
                    let key = (t / 16) * 17 * 16 + t % 16 + 16 * 5;
                    assert_eq!(packed.keys_t[key], id);
                    assert_eq!(packed.values[capacity * 16 + t * 16], -id);
                }
            }
        }
        assert!(cache.reorder(&[0, 1]).is_err());
        assert!(cache.reorder(&[0, 1, 3]).is_err());
        let full = vec![0.0f32; rows * 21 * 3 * hidden];
        assert!(cache.store(0, &full, 21).is_err());
        Ok(())
    }
}
