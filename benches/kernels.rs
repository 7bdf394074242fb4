//! The kernels alone on the path `OXIFORMER_SIMD` picks
//! (`OXIFORMER_SIMD=avx2 cargo run --release --example kernels`): the fp32 and int8 GEMMs on
//! MiniLM's shapes and large ones (int8 with 4 outlier channels, n = 1536 with GELU, as in the
//! model), one attention head, a 32x128 batch's whole attention (fp32, and int8 as int8 models
//! run it), the softmax, the activation quantization, and a forward's 24 dense products with
//! cold weights. Best of 25 calls, hot caches except the last; for peers and whole models see
//! `compare.py` (README.md).
use _core::attention::{
    multi_head_attention, multi_head_attention_int8, padded_spans, AttentionShape,
};
use _core::ops::cpu;
use _core::ops::matmul::{matmul, matmul_strided, pack_panels, Epilogue};
use _core::ops::qmatmul::{qmatmul, storage, Activations, Epilogue as QEpilogue, PackedInt8};
use _core::ops::quantize::{quantize_rows, Outliers, QuantizedRows};
use _core::ops::softmax::{scaled_softmax_pair, scaled_softmax_row};
use _core::ops::{add_layer_norm, Activation};
use std::time::Instant;

fn best(mut run: impl FnMut()) -> f64 {
    run();
    (0..25)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The CPU's model name (Linux), for the header of the table.
fn cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find(|line| line.starts_with("model name") || line.starts_with("Model"))
        .and_then(|line| line.split_once(':'))
        .map_or_else(
            || std::env::consts::ARCH.to_string(),
            |(_, name)| name.trim().to_string(),
        )
}

/// The GEMM shapes: `KERNEL_SHAPES=MxKxN,...` or MiniLM's and large ones.
fn shapes() -> Vec<(usize, usize, usize)> {
    let parse = |shape: &str| -> Option<(usize, usize, usize)> {
        let mut sizes = shape.trim().split('x').map(|size| size.parse().ok());
        Some((sizes.next()??, sizes.next()??, sizes.next()??))
    };
    match std::env::var("KERNEL_SHAPES") {
        Ok(list) => list.split(',').filter_map(parse).collect(),
        Err(_) => vec![
            (16, 384, 1152),
            (128, 384, 1152),
            (128, 384, 384),
            (128, 1536, 384),
            (128, 384, 1536),
            (768, 1536, 384),
            (4096, 384, 1152),
            (4096, 384, 1536),
        ],
    }
}

fn main() {
    let paths = cpu::active();
    println!("CPU: {}; paths: {paths:?}", cpu_name());
    for (m, k, n) in shapes() {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let p = pack_panels(&b, k, n);
        let mut out = vec![0.0; m * n];
        // The FFN's first layer (n = 1536) with its bias and GELU, as in a forward.
        let activation = (n == 1536).then_some(Activation::GeluErf);
        let bias = vec![0.0f32; n];
        let s = best(|| matmul(&a, &p, &mut out, m, k, n, Epilogue::Bias(&bias, activation)));
        let flops = 2.0 * (m * k * n) as f64;
        // int8
        let w: Vec<i8> = (0..n * k).map(|i| (i % 200) as i8 - 100).collect();
        let (group, words) = storage(paths.int8);
        let packed = PackedInt8::pack(&w, n, k, group);
        let kp = packed.k_padded();
        let bytes: Vec<u8> = (0..m * kp).map(|i| (i % 251) as u8).collect();
        let wide: Vec<u16> = bytes.iter().map(|&v| v as u16).collect();
        let (ones, zeros, zi) = (
            vec![1.0f32; m.max(n)],
            vec![0.0f32; n],
            vec![0i32; m.max(n)],
        );
        // 4 outlier channels a row, as MiniLM's int8 layers have by default.
        let (outliers, outlier_weight) = (vec![0.5f32; m * 4], vec![0.25f32; 4 * n]);
        let e = QEpilogue {
            scales: &ones,
            zero_points: &zi,
            column_sums: &zi,
            weight_scale: &ones,
            bias: &zeros,
            outliers: &outliers,
            outlier_weight: &outlier_weight,
            activation,
        };
        let acts = if words {
            Activations::Words(&wide)
        } else {
            Activations::Bytes(&bytes)
        };
        let q = best(|| qmatmul(paths.int8, acts, m, &packed, e, &mut out));
        println!("{m:>5}x{k}x{n:<5} fp32 {:7.3} ms {:6.1} GFLOPS | int8 {:7.3} ms {:6.1} GOPS | int8/fp32 {:.2}x", s * 1e3, flops / s / 1e9, q * 1e3, flops / q / 1e9, s / q);
    }
    // One attention head of one 128-token sequence, on the calling thread, as nn::attend
    // runs it: scores (128, 128) = Q (128, 32) K^T, then context (128, 32) = P V in 16-column
    // bands.
    let (t, d) = (128usize, 32usize);
    let q: Vec<f32> = (0..t * d).map(|i| (i % 7) as f32 * 0.1).collect();
    let kt = pack_panels(
        &(0..d * t).map(|i| (i % 5) as f32 * 0.1).collect::<Vec<_>>(),
        d,
        t,
    );
    let v = pack_panels(
        &(0..t * d).map(|i| (i % 3) as f32 * 0.1).collect::<Vec<_>>(),
        t,
        d,
    );
    let mut scores = vec![0.0f32; t * t];
    let mut context = vec![0.0f32; t * d];
    let s = best(|| unsafe {
        matmul_strided(
            &q,
            d,
            &kt,
            scores.as_mut_ptr(),
            t,
            (t, d, t),
            Epilogue::Overwrite,
        );
    });
    println!(
        "  attention Q K^T {t}x{d}x{t} serial: {:7.3} ms {:6.1} GFLOPS",
        s * 1e3,
        2.0 * (t * d * t) as f64 / s / 1e9
    );
    let s = best(|| unsafe {
        for band in 0..d / 16 {
            matmul_strided(
                &scores,
                t,
                &v[band * t * 16..],
                context.as_mut_ptr().add(band * 16),
                d,
                (t, t, 16),
                Epilogue::Overwrite,
            );
        }
    });
    println!(
        "  attention P V {t}x{t}x{d} serial: {:7.3} ms {:6.1} GFLOPS",
        s * 1e3,
        2.0 * (t * d * t) as f64 / s / 1e9
    );
    // The whole attention of 32 sequences of 128 tokens, 12 heads of 32 (MiniLM's 32x128), as
    // the encoder runs it: packing each head's keys and values, scores, softmax, context.
    let (batch, heads) = (32usize, 12usize);
    let hidden = heads * d;
    let qkv: Vec<f32> = (0..batch * t * 3 * hidden)
        .map(|i| ((i * 7919) % 211) as f32 / 105.0 - 1.0)
        .collect();
    let spans = padded_spans(batch, t);
    let shape = AttentionShape {
        num_heads: heads,
        head_size: d,
    };
    let mut context = vec![0.0f32; batch * t * hidden];
    let s = best(|| multi_head_attention(&qkv, &spans, None, shape, &mut context));
    let q = best(|| multi_head_attention_int8(paths.int8, &qkv, &spans, None, shape, &mut context));
    println!(
        "  attention {batch}x{t}, {heads} heads of {d}: fp32 {:7.3} ms {:6.1} GFLOPS | int8 \
         (an int8 model's) {:7.3} ms | int8/fp32 {:.2}x",
        s * 1e3,
        4.0 * (batch * heads * t * t * d) as f64 / s / 1e9,
        q * 1e3,
        s / q
    );
    // Attention's softmax: 128 rows of 128 scores (one head of one 128-token sequence).
    let mask: Vec<f32> = (0..t)
        .map(|i| if i < 120 { 0.0 } else { f32::MIN })
        .collect();
    let source: Vec<f32> = (0..t * t).map(|i| (i % 17) as f32 * 0.5).collect();
    let s = best(|| {
        scores.copy_from_slice(&source);
        for row in scores.chunks_exact_mut(t) {
            scaled_softmax_row(row, 0.17, Some(&mask));
        }
    });
    println!(
        "  softmax {t} rows of {t} (and a copy): {:7.3} ms {:5.2} ns a value",
        s * 1e3,
        s * 1e9 / (t * t) as f64
    );
    let s = best(|| {
        scores.copy_from_slice(&source);
        for pair in scores.chunks_exact_mut(2 * t) {
            let (first, second) = pair.split_at_mut(t);
            scaled_softmax_pair(first, second, 0.17, Some(&mask));
        }
    });
    println!(
        "  softmax by pairs of rows (and a copy): {:7.3} ms {:5.2} ns a value",
        s * 1e3,
        s * 1e9 / (t * t) as f64
    );
    // Per-token quantization of activations (int8 path), 8 bits, no outlier channels.
    for &(rows, cols) in &[(128usize, 384usize), (4096, 384), (4096, 1536)] {
        let input: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03)
            .collect();
        let mut out = QuantizedRows::default();
        let storage = (cols, false);
        let s = best(|| {
            quantize_rows(
                &input,
                (rows, cols),
                8,
                Outliers::default(),
                storage,
                &mut out,
            )
        });
        println!(
            "  quantize {rows}x{cols}: {:7.3} ms {:5.2} ns a value",
            s * 1e3,
            s * 1e9 / (rows * cols) as f64
        );
    }
    // The residual connection and LayerNorm after each block (4096 rows of 384).
    let (rows, cols) = (4096usize, 384usize);
    let x: Vec<f32> = (0..rows * cols).map(|i| (i % 13) as f32 * 0.1).collect();
    let residual: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 * 0.2).collect();
    let (gamma, beta) = (vec![1.0f32; cols], vec![0.0f32; cols]);
    let mut y = x.clone();
    let s = best(|| {
        y.copy_from_slice(&x);
        add_layer_norm(&mut y, &residual, &gamma, &beta, 1e-12)
    });
    println!(
        "  residual + LayerNorm {rows}x{cols} (and a copy): {:7.3} ms {:5.2} ns a value",
        s * 1e3,
        s * 1e9 / (rows * cols) as f64
    );
    // A whole MiniLM forward's dense products with its own weights each (6 layers x 4, 42 MB
    // of packed fp32 panels, far beyond L2): the weights come from L3 or memory, as in a
    // model, where the loops above reuse one matrix from L2.
    let layer = [(384usize, 1152usize), (384, 384), (384, 1536), (1536, 384)];
    let weights: Vec<(usize, usize, Vec<f32>)> = (0..6)
        .flat_map(|_| layer)
        .map(|(k, n)| {
            let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
            (k, n, pack_panels(&b, k, n))
        })
        .collect();
    for m in [16usize, 128] {
        let a: Vec<f32> = (0..m * 1536).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; m * 1536];
        let flops: f64 = weights
            .iter()
            .map(|(k, n, _)| 2.0 * (m * k * n) as f64)
            .sum();
        let s = best(|| {
            for (k, n, packed) in &weights {
                let (k, n) = (*k, *n);
                matmul(
                    &a[..m * k],
                    packed,
                    &mut out[..m * n],
                    m,
                    k,
                    n,
                    Epilogue::Overwrite,
                );
            }
        });
        println!(
            "  {m} rows through 24 layers' weights (cold): {:7.3} ms {:6.1} GFLOPS",
            s * 1e3,
            flops / s / 1e9
        );
    }
}
