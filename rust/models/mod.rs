//! Models: each family's names and options ([`families`]), then the models
//! built from the layers of [`crate::nn`], one file per HF model class.

pub mod canonical;
pub mod decoder;
pub mod decoder_config;
pub mod decoder_int8;
pub mod decoder_state;
pub mod encoder;
pub mod families;
pub mod heads;
