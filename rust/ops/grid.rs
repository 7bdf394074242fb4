//! The scaffold both GEMMs run on ([`crate::ops::matmul`] in fp32, [`crate::ops::qmatmul`]
//! in int8): the output's columns come in panels of 16 (the weights are packed panel by
//! panel at load), a tile covers up to `rows` rows by `panels` adjacent panels with its sums
//! in registers, and the grid hands tiles to the thread pool.
//!
//! Tasks are (block of rows, group of tile columns). Few rows make one block, split into
//! groups of columns so that every thread has work (one sentence: the latency path); there,
//! each panel's depth slice is read from memory once and stays in L1 while every row tile of
//! the block passes over it, while the next slice is prefetched into L2, a share per row
//! tile ([`Order::Panels`]). Many rows make several blocks; there, each row tile crosses a
//! chunk of columns (in L2), so output rows are written in runs of lines rather than one
//! line per row ([`Order::Rows`]). No sum is ever split across tasks, and the depth slices
//! depend on `k` alone, so neither the thread count nor the rows around a row change its
//! result.

use rayon::prelude::*;

use super::simd::prefetch_line;

/// Output columns per panel (the packing unit of both GEMMs).
pub const PANEL: usize = 16;
/// Most panels one tile covers.
pub const MAX_TILE_PANELS: usize = 2;
/// Bytes per cache line, the prefetch unit.
const LINE: usize = 64;

/// A raw output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
pub struct OutPtr(pub *mut f32);
// SAFETY: the grid gives each tile of the output to one task (see `run`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Rows `row..row + rows` by panels `panel..panel + panels` of depth slice `slice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub row: usize,
    pub rows: usize,
    pub panel: usize,
    pub panels: usize,
    pub slice: usize,
}

/// The lines of packed weights a tile pulls into L2 while it computes: lines
/// `first..first + count` of the concatenated slices at `starts` (`per_panel` lines each).
#[derive(Clone, Copy)]
pub struct Prefetch {
    starts: [*const u8; MAX_TILE_PANELS],
    per_panel: usize,
    first: usize,
    pub count: usize,
}

impl Prefetch {
    pub const NONE: Prefetch = Prefetch {
        starts: [std::ptr::null(); MAX_TILE_PANELS],
        per_panel: 1,
        first: 0,
        count: 0,
    };

    /// This share's lines pulled evenly over the `steps` steps of a tile's loop, at most
    /// one a step (bursts overflow the queue of misses): a step earns `rate` credit, a
    /// line costs `steps`.
    #[inline(always)]
    pub fn paced(&self, steps: usize) -> Paced {
        Paced {
            lines: self.lines(),
            rate: self.count.min(steps),
            steps: steps.max(1),
            credit: 0,
        }
    }

    /// This share's lines in order, to pull one at a time.
    #[inline(always)]
    fn lines(&self) -> Lines {
        let per_panel = self.per_panel.max(1);
        let panel = (self.first / per_panel).min(MAX_TILE_PANELS - 1);
        let left = per_panel - self.first % per_panel;
        Lines {
            at: self.starts[panel].wrapping_add((per_panel - left) * LINE),
            left,
            panel,
            starts: self.starts,
            per_panel,
            remaining: self.count,
        }
    }
}

/// A [`Prefetch`] share as a tile's loop pulls it (see [`Prefetch::paced`]).
pub struct Paced {
    lines: Lines,
    rate: usize,
    steps: usize,
    credit: usize,
}

impl Paced {
    /// `done` more steps computed: pull the lines they earned.
    #[inline(always)]
    pub fn advance(&mut self, done: usize) {
        self.credit += done * self.rate;
        while self.credit >= self.steps {
            self.credit -= self.steps;
            self.lines.pull();
        }
    }

    /// The loop is over: pull what is left.
    #[inline(always)]
    pub fn finish(&mut self) {
        self.lines.pull_rest();
    }
}

/// A walk over the lines of a [`Prefetch`] share: a pointer moved a line at a time, so
/// that the tiles' loops, which pull a line every few steps, do no division.
struct Lines {
    at: *const u8,
    /// Lines left in the current panel's slice, at least 1.
    left: usize,
    panel: usize,
    starts: [*const u8; MAX_TILE_PANELS],
    per_panel: usize,
    remaining: usize,
}

impl Lines {
    /// Pull the next line into L2 (nothing once the share is done).
    #[inline(always)]
    fn pull(&mut self) {
        if let Some(line) = self.next_line() {
            prefetch_line(line);
        }
    }

    /// The next line's address, the walk moved past it.
    #[inline(always)]
    fn next_line(&mut self) -> Option<*const u8> {
        if self.remaining == 0 {
            return None;
        }
        let line = self.at;
        self.remaining -= 1;
        self.left -= 1;
        if self.left == 0 {
            self.panel = (self.panel + 1).min(MAX_TILE_PANELS - 1);
            self.at = self.starts[self.panel];
            self.left = self.per_panel;
        } else {
            self.at = self.at.wrapping_add(LINE);
        }
        Some(line)
    }

    /// Pull every line left.
    #[inline(always)]
    fn pull_rest(&mut self) {
        while self.remaining > 0 {
            self.pull();
        }
    }
}

/// What a GEMM gives the grid.
pub trait Kernel: Sync {
    /// Depth slices of each product (1 for int8).
    fn slices(&self) -> usize;
    /// Where panel `panel`'s slice `slice` starts in the packed weights, and its length in
    /// lines.
    fn slice_lines(&self, panel: usize, slice: usize) -> (*const u8, usize);
    /// Compute and write one tile, pulling `prefetch` into L2 meanwhile.
    ///
    /// # Safety
    /// The tile lies inside the product the kernel was built for, and no other thread
    /// reads or writes its output meanwhile.
    unsafe fn tile(&self, tile: Tile, prefetch: Prefetch);
}

/// The shape of a grid: the tile and task sizes of one kernel on one path.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Most rows of one tile.
    pub tile_rows: usize,
    /// Panels of one tile (at most [`MAX_TILE_PANELS`]).
    pub tile_panels: usize,
    /// Up to this many rows, one block takes every row.
    pub one_block: usize,
    /// Rows per block above `one_block`.
    pub block_rows: usize,
    /// Panels per chunk in `Order::Rows`.
    pub chunk_panels: usize,
}

/// How a task walks its rows and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Column by column (each slice read from memory once, the next one prefetched), then
    /// row tile by row tile.
    Panels,
    /// Chunk of columns by chunk, then row tile by row tile across the chunk.
    Rows,
}

/// Columns of tiles: `units` of `tile_panels` panels, the last one maybe narrower.
#[derive(Debug, Clone, Copy)]
struct Columns {
    panels: usize,
    tile_panels: usize,
}

impl Columns {
    fn count(&self) -> usize {
        self.panels.div_ceil(self.tile_panels)
    }

    /// The first panel of unit `unit` and how many it has.
    fn unit(&self, unit: usize) -> (usize, usize) {
        let first = unit * self.tile_panels;
        (first, self.tile_panels.min(self.panels - first))
    }
}

/// Run `kernel` over `m` rows by `panels` panels on the current pool.
pub fn run(kernel: &impl Kernel, shape: Shape, m: usize, panels: usize) {
    if m == 0 || panels == 0 {
        return;
    }
    let columns = Columns {
        panels,
        tile_panels: shape.tile_panels,
    };
    let units = columns.count();
    // 8 tasks a thread: small enough to even out a thread that falls behind, large
    // enough to stream panels.
    let wanted = 8 * rayon::current_num_threads();
    let block = if m <= shape.one_block {
        m
    } else {
        shape.block_rows
    };
    let blocks = m.div_ceil(block);
    let per_group = units.div_ceil(wanted.div_ceil(blocks).clamp(1, units));
    let groups = units.div_ceil(per_group);
    let order = if blocks == 1 {
        Order::Panels
    } else {
        Order::Rows
    };
    // One task per job: a thread that falls behind gives up single tasks, not halves of
    // its share.
    (0..blocks * groups)
        .into_par_iter()
        .with_max_len(1)
        .for_each(|task| {
            let (first, group) = ((task / groups) * block, task % groups);
            let walk = Walk {
                kernel,
                shape,
                columns,
                rows: first..(first + block).min(m),
                units: group * per_group..((group + 1) * per_group).min(units),
            };
            walk.run(order);
        });
}

/// Run `kernel` on the calling thread alone, in `Order::Panels`: for the small products of
/// attention, one task each.
pub fn run_serial(kernel: &impl Kernel, shape: Shape, m: usize, panels: usize) {
    if m == 0 || panels == 0 {
        return;
    }
    let columns = Columns {
        panels,
        tile_panels: shape.tile_panels,
    };
    let walk = Walk {
        kernel,
        shape,
        columns,
        rows: 0..m,
        units: 0..columns.count(),
    };
    walk.run(Order::Panels);
}

/// One task: its rows and its columns of tiles.
struct Walk<'a, K> {
    kernel: &'a K,
    shape: Shape,
    columns: Columns,
    rows: std::ops::Range<usize>,
    units: std::ops::Range<usize>,
}

impl<K: Kernel> Walk<'_, K> {
    fn run(&self, order: Order) {
        let slices = self.kernel.slices();
        match order {
            Order::Panels => {
                let mut steps = (0..slices)
                    .flat_map(|slice| self.units.clone().map(move |unit| (slice, unit)))
                    .peekable();
                while let Some((slice, unit)) = steps.next() {
                    let next = steps.peek().copied();
                    self.column(self.rows.clone(), unit, slice, next);
                }
            }
            Order::Rows => {
                let chunk_units = (self.shape.chunk_panels / self.shape.tile_panels).max(1);
                let (first, end) = (self.rows.start, self.rows.end);
                for slice in 0..slices {
                    for chunk in self.units.clone().step_by(chunk_units) {
                        let chunk = chunk..(chunk + chunk_units).min(self.units.end);
                        // The column the next chunk starts with, if any.
                        let following = if chunk.end < self.units.end {
                            Some((slice, chunk.end))
                        } else {
                            Some((slice + 1, self.units.start)).filter(|&(s, _)| s < slices)
                        };
                        for row in (first..end).step_by(self.shape.tile_rows) {
                            let rows = self.shape.tile_rows.min(end - row);
                            let last = row + self.shape.tile_rows >= end;
                            for unit in chunk.clone() {
                                // The first row tile pulls the chunk in, a column ahead;
                                // the last one pulls the next chunk's first column.
                                let next = if row == first && unit + 1 < chunk.end {
                                    Some((slice, unit + 1))
                                } else if last && unit + 1 == chunk.end {
                                    following
                                } else {
                                    None
                                };
                                let prefetch = next.map_or(Prefetch::NONE, |(slice, unit)| {
                                    self.share(slice, unit, 0, 1)
                                });
                                let (panel, panels) = self.columns.unit(unit);
                                let tile = Tile {
                                    row,
                                    rows,
                                    panel,
                                    panels,
                                    slice,
                                };
                                // SAFETY: the tile is inside the product, and only this
                                // task writes its (rows, columns).
                                unsafe { self.kernel.tile(tile, prefetch) };
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every row tile of `rows` by one column of tiles, each tile pulling its share of the
    /// `next` column's slice into L2.
    fn column(
        &self,
        rows: std::ops::Range<usize>,
        unit: usize,
        slice: usize,
        next: Option<(usize, usize)>,
    ) {
        let (panel, panels) = self.columns.unit(unit);
        let tile_rows = self.shape.tile_rows;
        let tiles = rows.len().div_ceil(tile_rows);
        for index in 0..tiles {
            let row = rows.start + index * tile_rows;
            let prefetch = next.map_or(Prefetch::NONE, |(slice, unit)| {
                self.share(slice, unit, index, tiles)
            });
            let tile = Tile {
                row,
                rows: tile_rows.min(rows.end - row),
                panel,
                panels,
                slice,
            };
            // SAFETY: as in `run`.
            unsafe { self.kernel.tile(tile, prefetch) };
        }
    }

    /// Share `index` of `shares` of the lines of column `unit`'s slice `slice`.
    fn share(&self, slice: usize, unit: usize, index: usize, shares: usize) -> Prefetch {
        let (panel, panels) = self.columns.unit(unit);
        let mut starts = [std::ptr::null(); MAX_TILE_PANELS];
        let mut per_panel = 1;
        for (offset, start) in starts.iter_mut().enumerate().take(panels) {
            let (pointer, lines) = self.kernel.slice_lines(panel + offset, slice);
            *start = pointer;
            per_panel = lines.max(1);
        }
        let lines = per_panel * panels;
        let share = lines.div_ceil(shares);
        let first = (index * share).min(lines);
        Prefetch {
            starts,
            per_panel,
            first,
            count: share.min(lines - first),
        }
    }
}

/// `body` with the const `$R` equal to `$rows`, for each listed value (a tile's rows are
/// a const generic so that its sums stay in registers).
macro_rules! with_rows {
    ($rows:expr, [$($value:literal),+], $R:ident => $body:expr) => {
        match $rows {
            $( $value => { const $R: usize = $value; $body } )+
            _ => unreachable!("a tile has 1 to the kernel's most rows"),
        }
    };
}
pub(crate) use with_rows;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_walks_its_lines_in_order() {
        let buffer = vec![0u8; 4096];
        for per_panel in [1usize, 3, 24] {
            let starts = [buffer.as_ptr(), buffer.as_ptr().wrapping_add(2048)];
            let lines = per_panel * MAX_TILE_PANELS;
            for shares in [1usize, 2, 5] {
                let share = lines.div_ceil(shares);
                for index in 0..shares {
                    let first = (index * share).min(lines);
                    let prefetch = Prefetch {
                        starts,
                        per_panel,
                        first,
                        count: share.min(lines - first),
                    };
                    let mut walk = prefetch.lines();
                    let walked: Vec<_> = std::iter::from_fn(|| walk.next_line()).collect();
                    let expected: Vec<_> = (first..first + prefetch.count)
                        .map(|line| starts[line / per_panel].wrapping_add(line % per_panel * LINE))
                        .collect();
                    assert_eq!(walked, expected, "{per_panel} lines a panel, share {index}");
                }
            }
        }
    }

    #[test]
    fn a_paced_share_pulls_at_most_a_line_a_step_then_the_rest() {
        let buffer = vec![0u8; 4096];
        let starts = [buffer.as_ptr(), buffer.as_ptr().wrapping_add(2048)];
        // (lines, steps, steps a pass) -> lines pulled by the passes (before `finish`).
        for (count, steps, pass, during) in
            [(10, 4, 1, 4), (3, 8, 2, 3), (16, 16, 4, 16), (5, 0, 1, 0)]
        {
            let prefetch = Prefetch {
                starts,
                per_panel: 16,
                first: 0,
                count,
            };
            let mut paced = prefetch.paced(steps);
            for _ in 0..steps / pass {
                paced.advance(pass);
            }
            assert_eq!(
                count - paced.lines.remaining,
                during,
                "{count} lines over {steps} steps"
            );
            paced.finish();
            assert_eq!(paced.lines.remaining, 0);
        }
    }
}
