//! oxiformer: a CPU-only Transformer inference engine.
//!
//! The core (tokenizer, kernels, attention, BERT encoder) is plain Rust and
//! builds without Python; the `python` feature adds the PyO3 bindings in `py/`.

pub mod attention;
pub mod config;
pub mod dense;
pub mod embeddings;
pub mod error;
pub mod linear;
pub mod memory;
pub mod models;
pub mod nn;
pub mod ops;
pub mod qlinear;
pub mod quantization;
pub mod threads;
pub mod tokenizer;
pub mod weights;

#[cfg(feature = "python")]
mod py;

pub use config::{Activation, EncoderConfig, PositionEmbedding};
pub use error::{Error, Result};
pub use models::encoder::{expected_tensors, Encoder, EncoderOutput};
/// Which SIMD paths run (`OXIFORMER_SIMD`), for the bindings and users of the crate.
pub use ops::cpu;
pub use quantization::Quantization;
pub use weights::{Tensor, TensorMap};
