//! Numeric kernels: free functions over flat `&[f32]` row-major buffers, each with a naive
//! twin in its tests. They know nothing of models; `cpu` picks the SIMD path once, and
//! every path computes the same bits.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod activation;
pub mod cpu;
pub mod grid;
pub mod layernorm;
pub mod matmul;
pub mod qmatmul;
pub mod quantize;
pub mod simd;
pub mod softmax;
pub mod vecmath;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use activation::{apply_activation, gelu_erf, gelu_tanh, relu, Activation};
pub use layernorm::{add_layer_norm, layer_norm};
pub use softmax::scaled_softmax_row;

/// Rows per parallel task for row-wise kernels: enough work per task that scheduling stays
/// cheap, small enough to spread over the pool. Work for several tasks comes in a multiple
/// of the pool's threads, split evenly: one sentence's 128 rows of 384 go as 4 x 32 rows,
/// not 42 + 42 + 42 + 2, where one thread did twice the other's share. (Row-wise kernels
/// compute each row alone, so the split changes no result.)
pub(crate) fn rows_per_task(rows: usize, row_len: usize) -> usize {
    const TARGET_ELEMENTS: usize = 16 * 1024;
    let rows = rows.max(1);
    let tasks = rows.div_ceil((TARGET_ELEMENTS / row_len.max(1)).clamp(1, rows));
    if tasks == 1 {
        return rows;
    }
    let threads = rayon::current_num_threads().max(1);
    rows.div_ceil(tasks.next_multiple_of(threads).min(rows))
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_tasks_are_even_over_the_threads() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build();
        let split = |rows, len| {
            let per_task = super::rows_per_task(rows, len);
            (per_task, rows.div_ceil(per_task))
        };
        let splits =
            pool.map(|pool| pool.install(|| [split(128, 384), split(16, 384), split(4096, 384)]));
        // (rows per task, tasks): even at 128 rows; one task when there is less work than
        // one task's; on big batches the same as before.
        assert_eq!(splits.ok(), Some([(32, 4), (16, 1), (42, 98)]));
    }
}
