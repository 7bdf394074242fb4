//! The one error type of the crate. Every fallible function returns `Result<T>`;
//! the Python bindings map each variant once to an `oxiformer` exception
//! (`rust/py/mod.rs`).

/// Everything that can go wrong on user-supplied data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A model configuration that cannot describe a valid encoder.
    #[error("{source_name}: {message}")]
    Config {
        /// The file (or other origin) the configuration came from.
        source_name: String,
        message: String,
    },
    /// A weight tensor that is missing, mis-shaped or otherwise unusable.
    #[error("tensor '{tensor}': {message}")]
    Weights { tensor: String, message: String },
    /// Model inputs (ids, masks, shapes) that the model cannot run on.
    #[error("{0}")]
    Input(String),
    /// Tokenizer files or text that cannot be tokenized.
    #[error("{0}")]
    Tokenizer(String),
    /// The thread pool could not be built.
    #[error("thread pool: {0}")]
    Threads(String),
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            source_name: source_name.into(),
            message: message.into(),
        }
    }

    pub fn weights(tensor: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Weights {
            tensor: tensor.into(),
            message: message.into(),
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }
}
