//! The int8 GEMM against a naive i64 product, and every path against the portable one.

use super::*;
use crate::ops::cpu;
use crate::ops::simd::{Portable, PortablePairs, PortableSigned};

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// `(m, k)` activations, a third of them at 255 (to catch any saturation).
fn activations(m: usize, k: usize, seed: &mut u64) -> Vec<u8> {
    (0..m * k)
        .map(|_| match lcg(seed) % 3 {
            0 => 255,
            _ => (lcg(seed) % 256) as u8,
        })
        .collect()
}

/// `(n, k)` weights, half of them at +-127.
fn weights(n: usize, k: usize, seed: &mut u64) -> Vec<i8> {
    (0..n * k)
        .map(|_| match lcg(seed) % 4 {
            0 => 127,
            1 => -127,
            _ => ((lcg(seed) % 255) as i64 - 127) as i8,
        })
        .collect()
}

/// `a (m, k)` padded to rows of `kp`, in the storage type of a path.
fn padded<A: Copy + Default + From<u8>>(a: &[u8], m: usize, k: usize, kp: usize) -> Vec<A> {
    let mut out = vec![A::default(); m * kp];
    for i in 0..m {
        for d in 0..k {
            out[i * kp + d] = A::from(a[i * k + d]);
        }
    }
    out
}

unsafe fn twin_avx512vnni(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    if tile.panels == 2 {
        grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
            super::tile::<Portable<16>, R, 2>(Portable, product, tile, prefetch)
        })
    } else {
        grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
            super::tile::<Portable<16>, R, 1>(Portable, product, tile, prefetch)
        })
    }
}

unsafe fn twin_avxvnni(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        super::tile::<Portable<8>, R, 2>(Portable, product, tile, prefetch)
    })
}

unsafe fn twin_avx2(product: &QProduct<'_, u16>, tile: Tile, prefetch: Prefetch) {
    grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        super::tile::<PortablePairs<8>, R, 2>(PortablePairs, product, tile, prefetch)
    })
}

/// The NEON tiles' logic (`sdot` and the fallback: activations as `x - 128`, sums started
/// from `128 * sum w`) on 4 portable lanes, 4 vectors a panel.
unsafe fn twin_neon(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        super::tile::<PortableSigned<4>, R, 4>(PortableSigned, product, tile, prefetch)
    })
}

/// A kernel under test: its name, and how it runs a product of u8 activations.
type Runner =
    Box<dyn Fn(&[u8], usize, usize, &[i8], usize, Epilogue<'_>) -> Vec<f32> + Send + Sync>;

/// Run a product through a u8 kernel (groups of 4).
fn bytes(kernel: QTileKernel<u8>) -> Runner {
    Box::new(move |a, m, k, w, n, epilogue| {
        let packed = PackedInt8::pack(w, n, k, 4);
        let a = padded::<u8>(a, m, k, packed.k_padded());
        both_outputs(
            |out| qmatmul_with(kernel, &a, m, &packed, epilogue, out),
            m,
            n,
        )
    })
}

/// A product run whole in parallel (rows `n` apart) and on one thread into rows 3 values
/// wider, whose results must agree (and the gaps stay untouched); the whole one.
fn both_outputs(run: impl Fn(Output), m: usize, n: usize) -> Vec<f32> {
    let mut whole = vec![f32::NAN; m * n];
    run(Output {
        ptr: OutPtr(whole.as_mut_ptr()),
        ldo: n,
        serial: false,
    });
    let ldo = n + 3;
    let mut strided = vec![-7.0f32; m * ldo];
    run(Output {
        ptr: OutPtr(strided.as_mut_ptr()),
        ldo,
        serial: true,
    });
    for (row, wide) in whole.chunks_exact(n.max(1)).zip(strided.chunks_exact(ldo)) {
        let same = row
            .iter()
            .zip(wide)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same && wide[n..].iter().all(|&gap| gap == -7.0),
            "strided output differs"
        );
    }
    whole
}

/// Run a product through a u16 kernel (pairs).
fn words(kernel: QTileKernel<u16>) -> Runner {
    Box::new(move |a, m, k, w, n, epilogue| {
        let packed = PackedInt8::pack(w, n, k, 2);
        let a = padded::<u16>(a, m, k, packed.k_padded());
        both_outputs(
            |out| qmatmul_with(kernel, &a, m, &packed, epilogue, out),
            m,
            n,
        )
    })
}

/// The portable twins of the SIMD tiles, and the SIMD tiles this CPU runs.
fn kernels() -> Vec<(String, Runner)> {
    let mut kernels: Vec<(String, Runner)> = vec![
        (
            "portable twin of avx512vnni".into(),
            bytes(QTileKernel {
                tile: twin_avx512vnni,
                shape: shape(8, 2),
            }),
        ),
        (
            "portable twin of avxvnni".into(),
            bytes(QTileKernel {
                tile: twin_avxvnni,
                shape: shape(6, 1),
            }),
        ),
        (
            "portable twin of avx2".into(),
            words(QTileKernel {
                tile: twin_avx2,
                shape: shape(6, 1),
            }),
        ),
        (
            "portable twin of neon and neondot".into(),
            bytes(QTileKernel {
                tile: twin_neon,
                shape: shape(6, 1),
            }),
        ),
    ];
    for path in [
        Int8Path::Avx2,
        Int8Path::AvxVnni,
        Int8Path::Avx512Vnni,
        Int8Path::Neon,
        Int8Path::NeonDot,
    ] {
        if !path.available() {
            if let Err(message) = cpu::skip_missing(path.name()) {
                panic!("{message}");
            }
            continue;
        }
        let runner: Runner = match storage(path) {
            (2, true) => Box::new(move |a, m, k, w, n, epilogue| {
                let packed = PackedInt8::pack(w, n, k, 2);
                let a = padded::<u16>(a, m, k, packed.k_padded());
                let mut out = vec![f32::NAN; m * n];
                qmatmul(path, Activations::Words(&a), m, &packed, epilogue, &mut out);
                out
            }),
            _ => Box::new(move |a, m, k, w, n, epilogue| {
                let packed = PackedInt8::pack(w, n, k, 4);
                let a = padded::<u8>(a, m, k, packed.k_padded());
                let mut out = vec![f32::NAN; m * n];
                qmatmul(path, Activations::Bytes(&a), m, &packed, epilogue, &mut out);
                out
            }),
        };
        kernels.push((path.name().into(), runner));
    }
    kernels
}

/// Columns and rows of a neutral epilogue (scale 1, no zero point, no bias, no outliers):
/// the outputs are the exact sums, rounded once to f32.
struct Neutral {
    ones: Vec<f32>,
    zeros: Vec<f32>,
    no_zero_points: Vec<i32>,
    no_sums: Vec<i32>,
}

impl Neutral {
    fn new(m: usize, n: usize) -> Self {
        Neutral {
            ones: vec![1.0; m.max(n)],
            zeros: vec![0.0; n],
            no_zero_points: vec![0; m],
            no_sums: vec![0; n],
        }
    }

    fn epilogue(&self) -> Epilogue<'_> {
        Epilogue {
            scales: &self.ones,
            zero_points: &self.no_zero_points,
            column_sums: &self.no_sums,
            weight_scale: &self.ones,
            bias: &self.zeros,
            outliers: &[],
            outlier_weight: &[],
            activation: None,
        }
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn sums_are_exact_at_the_extremes_on_every_path() {
    let mut seed = 7;
    let portable = bytes(byte_kernel(Int8Path::Portable));
    let kernels = kernels();
    for &(m, n, k) in &[
        (1, 1, 1),
        (5, 17, 7),
        (13, 40, 64),
        (100, 33, 129),
        (200, 16, 384),
        (3, 20, 1536),
        (9, 48, 3072),
        // blocks by 2 chunks of panels, the last partial
        (110, 300, 40),
    ] {
        let a = activations(m, k, &mut seed);
        let w = weights(n, k, &mut seed);
        let expected: Vec<f32> = (0..m * n)
            .map(|index| {
                let (i, j) = (index / n, index % n);
                let sum: i64 = (0..k)
                    .map(|d| i64::from(a[i * k + d]) * i64::from(w[j * k + d]))
                    .sum();
                sum as f32
            })
            .collect();
        let neutral = Neutral::new(m, n);
        assert_eq!(
            portable(&a, m, k, &w, n, neutral.epilogue()),
            expected,
            "{m}x{n}x{k}"
        );
        for (name, run) in &kernels {
            let got = run(&a, m, k, &w, n, neutral.epilogue());
            assert_eq!(got, expected, "{name}: {m}x{n}x{k}");
        }
    }
}

#[test]
fn every_path_gives_the_portable_bits() {
    // Every row count (1..=8, blocks above 96 rows), partial panels, odd panel counts, zero
    // points, scales, bias, outlier channels and every activation.
    let mut seed = 11;
    let portable = bytes(byte_kernel(Int8Path::Portable));
    let kernels = kernels();
    let mut cases = 0;
    for &(m, n, k, outliers) in &[
        (1, 16, 8, 0),
        (2, 48, 384, 4),
        (3, 40, 385, 1),
        (4, 1152, 64, 4),
        (5, 3, 800, 2),
        (6, 128, 32, 4),
        (7, 80, 129, 3),
        (8, 33, 17, 0),
        (9, 64, 100, 4),
        (16, 1536, 384, 4),
        (130, 40, 50, 4),
        (300, 200, 96, 2),
    ] {
        let a = activations(m, k, &mut seed);
        let w = weights(n, k, &mut seed);
        let scales: Vec<f32> = (0..m).map(|i| 0.013 * (i + 1) as f32).collect();
        let zero_points: Vec<i32> = (0..m).map(|i| (i * 29 % 256) as i32).collect();
        let column_sums: Vec<i32> = w
            .chunks(k)
            .map(|row| row.iter().map(|&v| i32::from(v)).sum())
            .collect();
        let weight_scale: Vec<f32> = (0..n).map(|i| 0.003 / (i + 1) as f32).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * -0.25).collect();
        let outlier_values: Vec<f32> = (0..m * outliers)
            .map(|i| (i as f32 * 7.3).sin() * 300.0)
            .collect();
        let outlier_weight: Vec<f32> = (0..outliers * n)
            .map(|i| (i as f32 * 1.7).cos() * 5.0)
            .collect();
        for activation in [
            None,
            Some(Activation::GeluErf),
            Some(Activation::GeluTanh),
            Some(Activation::Relu),
            Some(Activation::Tanh),
        ] {
            let epilogue = Epilogue {
                scales: &scales,
                zero_points: &zero_points,
                column_sums: &column_sums,
                weight_scale: &weight_scale,
                bias: &bias,
                outliers: &outlier_values,
                outlier_weight: &outlier_weight,
                activation,
            };
            let want = portable(&a, m, k, &w, n, epilogue);
            assert!(want.iter().all(|v| v.is_finite()));
            for (name, run) in &kernels {
                let got = run(&a, m, k, &w, n, epilogue);
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{name}: {m}x{n}x{k}, {activation:?}"
                );
                cases += 1;
            }
        }
    }
    let names: Vec<&str> = kernels.iter().map(|(name, _)| name.as_str()).collect();
    println!("{cases} int8 products bitwise equal to the portable path on: {names:?}");
}

#[test]
fn the_same_outputs_on_any_thread_count() {
    let mut seed = 3;
    let (m, n, k) = (150, 280, 96);
    let a = activations(m, k, &mut seed);
    let w = weights(n, k, &mut seed);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build();
    if let (Ok(one), Ok(three)) = (one, three) {
        for (name, run) in kernels() {
            let neutral = Neutral::new(m, n);
            let once = || run(&a, m, k, &w, n, neutral.epilogue());
            assert_eq!(
                bits(&one.install(once)),
                bits(&three.install(once)),
                "{name}"
            );
        }
    }
}

#[test]
fn packing_keeps_its_layout_from_rows_and_from_columns() {
    for group in [2usize, 4] {
        for (n, k) in [
            (1usize, 1usize),
            (16, 8),
            (17, 5),
            (33, 32),
            (128, 32),
            (32, 130),
        ] {
            let w: Vec<i8> = (0..n * k).map(|i| ((i * 37) % 255) as i8).collect();
            let packed = PackedInt8::pack(&w, n, k, group);
            // The layout, element by element: [panel][k / group][16 channels][group].
            let k_padded = k.next_multiple_of(group);
            assert_eq!(packed.k_padded, k_padded);
            for (index, &value) in packed.data.iter().enumerate() {
                let (panel, rest) = (index / (k_padded * PANEL), index % (k_padded * PANEL));
                let (step, slot) = (rest / (group * PANEL), rest % (group * PANEL));
                let (channel, depth) = (panel * PANEL + slot / group, step * group + slot % group);
                let want = if channel < n && depth < k {
                    w[channel * k + depth]
                } else {
                    0
                };
                assert_eq!(value, want, "n {n} k {k} group {group} at {index}");
            }
            for (channel, &sum) in packed.sums.iter().enumerate() {
                let want: i32 = (0..k)
                    .filter(|_| channel < n)
                    .map(|d| i32::from(w[channel * k + d]))
                    .sum();
                assert_eq!(sum, want);
            }
            // The same weights given transposed, into a reused (larger) buffer.
            let transposed: Vec<i8> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let mut reused = PackedInt8::pack(&vec![9; 40 * 140], 40, 140, group);
            reused.fill_columns(&transposed, (n, k, group));
            assert_eq!(
                (reused.data, reused.sums),
                (packed.data.clone(), packed.sums.clone())
            );
        }
    }
}
