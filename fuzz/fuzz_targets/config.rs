//! `EncoderConfig::from_json` on arbitrary bytes: an error or a valid
//! configuration, never a panic; a valid one survives `to_json` unchanged,
//! and the tensor list it implies can be built.

#![no_main]

use _core::{expected_tensors, EncoderConfig, Error, Quantization};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match EncoderConfig::from_json(&text, "config.json") {
        Err(err) => {
            assert!(matches!(err, Error::Config { .. }), "{err:?}");
            assert!(err.to_string().starts_with("config.json: "), "{err}");
        }
        Ok(config) => {
            assert!(config.hidden_size % config.num_attention_heads == 0);
            assert!(config.head_size() > 0);
            let round_trip = EncoderConfig::from_json(&config.to_json(), "normalized")
                .unwrap_or_else(|err| panic!("to_json output refused: {err}"));
            assert_eq!(round_trip, config);
            // The Python layer calls this with every loaded config.
            let tensors = expected_tensors(&config, true, &Quantization::default());
            assert!(tensors.len() >= 5);
        }
    }
});
