//! The decoder on a small model with deterministic weights: the cache gives the same bits
//! as recomputing the prefix, beams reorder rows, bad inputs are errors.

use super::*;
use crate::weights::Tensor;

const CONFIG: &str = r#"{"vocab_size": 23, "hidden_size": 8, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 16,
    "is_decoder": true, "add_cross_attention": true}"#;

/// A decoder reading an encoder of width `memory_size`, weights from a fixed sequence.
fn decoder(memory_size: usize) -> Result<Decoder> {
    let config = DecoderConfig::from_json(CONFIG, "test")?;
    let quantization = DecoderQuantization::default();
    let mut tensors = TensorMap::new();
    for (index, (name, shape)) in Decoder::expected_tensors(&config, memory_size, &quantization)
        .into_iter()
        .enumerate()
    {
        let len: usize = shape.iter().product();
        let values = (0..len)
            .map(|i| {
                let wave = ((i * 7919 + index * 104_729) % 199) as f32 / 199.0 - 0.5;
                if name.contains("LayerNorm.weight") {
                    1.0 + wave * 0.2
                } else {
                    wave
                }
            })
            .collect();
        tensors.insert(name.clone(), Tensor::new(&name, shape, values)?);
    }
    Decoder::load(config, tensors, memory_size, &quantization)
}

fn memory(decoder: &Decoder, width: usize) -> Result<Arc<Memory>> {
    let (batch, len) = (2, 5);
    let hidden: Vec<f32> = (0..batch * len * width)
        .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    Ok(Arc::new(decoder.memory(&hidden, &mask, batch, len)?))
}

#[test]
fn the_cache_gives_the_bits_of_recomputing_the_prefix() -> Result<()> {
    // Widths differ: the encoder's output goes through enc_to_dec_proj.
    let decoder = decoder(6)?;
    let memory = memory(&decoder, 6)?;
    let ids: [i64; 8] = [1, 5, 9, 22, 3, 3, 0, 17];
    let mut full = decoder.start(Arc::clone(&memory), 1, 4)?;
    let all = decoder.step(&mut full, &ids, 4, None, true)?;
    let vocab = decoder.vocab_size();
    let mut cached = decoder.start(memory, 1, 4)?;
    for position in 0..4 {
        let step: Vec<i64> = (0..2).map(|row| ids[row * 4 + position]).collect();
        let logits = decoder.step(&mut cached, &step, 1, None, false)?;
        for row in 0..2 {
            let want = &all[(row * 4 + position) * vocab..][..vocab];
            assert_eq!(&logits[row * vocab..][..vocab], want, "position {position}");
        }
    }
    assert_eq!(cached.len(), 4);
    // The cache is full now.
    assert!(decoder.step(&mut cached, &[1, 1], 1, None, false).is_err());
    Ok(())
}

#[test]
fn reordered_beams_continue_the_rows_they_copy() -> Result<()> {
    let decoder = decoder(8)?;
    let memory = memory(&decoder, 8)?;
    let vocab = decoder.vocab_size();
    // Two beams per source: rows 0, 1 (source 0), rows 2, 3 (source 1).
    let mut beams = decoder.start(Arc::clone(&memory), 2, 3)?;
    decoder.step(&mut beams, &[4, 7, 4, 7], 1, None, false)?;
    beams.reorder(&[1, 1, 2, 3])?;
    let logits = decoder.step(&mut beams, &[2, 2, 2, 2], 1, None, false)?;
    assert_eq!(logits[..vocab], logits[vocab..2 * vocab]);
    let mut alone = decoder.start(memory, 2, 3)?;
    let want = decoder.step(&mut alone, &[7, 2, 7, 2, 4, 2, 7, 2], 2, None, false)?;
    assert_eq!(logits[..vocab], want[..vocab]);
    assert_eq!(logits[2 * vocab..], want[2 * vocab..]);
    // A beam may not move to another source's rows.
    assert!(beams.reorder(&[2, 1, 2, 3]).is_err());
    assert!(beams.reorder(&[0, 1, 2, 4]).is_err());
    Ok(())
}

#[test]
fn bad_inputs_are_errors() -> Result<()> {
    let decoder = decoder(8)?;
    let memory = memory(&decoder, 8)?;
    let mut state = decoder.start(Arc::clone(&memory), 1, 16)?;
    assert!(decoder.step(&mut state, &[23, 0], 1, None, false).is_err());
    assert!(decoder
        .step(&mut state, &[1, 2, 3], 1, None, false)
        .is_err());
    assert!(decoder
        .step(&mut state, &[1, 2], 1, Some(&[1, 2]), false)
        .is_err());
    assert!(decoder.start(Arc::clone(&memory), 1, 17).is_err());
    assert!(decoder.start(memory, 0, 4).is_err());
    assert!(decoder.memory(&[0.0; 10], &[1; 10], 2, 5).is_err());
    let no_cross = CONFIG.replace(
        r#""add_cross_attention": true"#,
        r#""add_cross_attention": false"#,
    );
    assert!(DecoderConfig::from_json(&no_cross, "test").is_err());
    Ok(())
}
