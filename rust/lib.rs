//! oxiformer: a CPU-only Transformer inference engine.
//!
//! The core (tokenizer, kernels, attention, BERT encoder) is plain Rust and
//! builds without Python; the `python` feature adds the PyO3 bindings in `py/`.

pub mod attention;
pub mod bert;
pub mod config;
pub mod dense;
pub mod embeddings;
pub mod error;
pub mod linear;
pub mod memory;
pub mod ops;
pub mod qlinear;
pub mod quantization;
pub mod threads;
pub mod tokenizer;
pub mod weights;

#[cfg(feature = "python")]
mod py;

pub use bert::{expected_tensors, Encoder, EncoderOutput};
pub use config::{Activation, EncoderConfig, PositionEmbedding};
pub use error::{Error, Result};
pub use quantization::Quantization;
pub use weights::{Tensor, TensorMap};
