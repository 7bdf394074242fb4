//! oxiformer: a CPU-only Transformer inference engine.
//!
//! The core (tokenizer, kernels, attention, BERT encoder) is plain Rust and
//! builds without Python; the `python` feature adds the PyO3 bindings in `py/`.

pub mod config;
pub mod error;
pub mod threads;
pub mod tokenizer;

#[cfg(feature = "python")]
mod py;

pub use config::{Activation, EncoderConfig, PositionEmbedding};
pub use error::{Error, Result};
