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
/// cheap, small enough to spread over the pool.
pub(crate) fn rows_per_task(rows: usize, row_len: usize) -> usize {
    const TARGET_ELEMENTS: usize = 16 * 1024;
    (TARGET_ELEMENTS / row_len.max(1)).clamp(1, rows.max(1))
}
