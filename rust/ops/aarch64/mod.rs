//! The aarch64 register tiles: thin implementations of the lane traits of `ops::simd` over
//! NEON intrinsics (and `sdot`), and the `#[target_feature]` entry points the kernels call
//! once the CPU check in `ops::cpu` has picked the path.

pub mod neon;
