//! Models: each family's names and options ([`families`]), then the models
//! built from the layers of [`crate::nn`], one file per HF model class.

pub mod canonical;
pub mod encoder;
pub mod families;
pub mod heads;
