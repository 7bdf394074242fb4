use super::*;
use crate::ops::cpu;

/// `len` deterministic values in [-2, 2).
fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i + seed) * 7919 + seed * 104_729) % 4001) as f32 / 1000.25 - 2.0)
        .collect()
}

/// One head: `queries` rows of Q, `keys` of K and V, each token's Q, K and V side by side in
/// rows of `3 d + 5` (as a fused projection, strided), and a mask over the keys.
struct Case {
    queries: usize,
    keys: usize,
    d: usize,
    /// Keys masked (bias `f32::MIN`): every third, or all.
    mask: Option<Masking>,
}

#[derive(Clone, Copy)]
enum Masking {
    EveryThird,
    All,
}

impl Case {
    fn stride(&self) -> usize {
        3 * self.d + 5
    }

    fn qkv(&self) -> Vec<f32> {
        values(
            self.queries.max(self.keys) * self.stride(),
            self.d + self.keys,
        )
    }

    fn bias(&self) -> Option<Vec<f32>> {
        self.mask.map(|masking| {
            (0..self.keys)
                .map(|j| match masking {
                    Masking::All => f32::MIN,
                    Masking::EveryThird if j % 3 == 1 => f32::MIN,
                    Masking::EveryThird => 0.0,
                })
                .collect()
        })
    }

    fn rows<'a>(&self, qkv: &'a [f32]) -> HeadRows<'a> {
        HeadRows {
            q: qkv,
            q_stride: self.stride(),
            k: &qkv[self.d..],
            v: &qkv[2 * self.d..],
            kv_stride: self.stride(),
            queries: self.queries,
            keys: self.keys,
            head_size: self.d,
        }
    }

    /// The attention on `path`, into rows 3 values wider than `d` (the gaps must stay).
    fn run(&self, path: Int8Path, scratch: &mut Int8Scratch) -> Vec<f32> {
        let (qkv, bias) = (self.qkv(), self.bias());
        let ldo = self.d + 3;
        let mut out = vec![-7.0f32; self.queries * ldo];
        // SAFETY: `out` holds `queries` rows of `ldo >= d` values, and is this call's alone.
        unsafe {
            attend_int8(
                path,
                self.rows(&qkv),
                bias.as_deref(),
                scratch,
                (out.as_mut_ptr(), ldo),
            );
        }
        let mut context = Vec::new();
        for row in out.chunks_exact(ldo) {
            assert!(
                row[self.d..].iter().all(|&gap| gap == -7.0),
                "wrote outside"
            );
            context.extend_from_slice(&row[..self.d]);
        }
        context
    }

    /// HF's eager attention: scores scaled and masked in f32 (where `f32::MIN` absorbs the
    /// score, so that a query seeing no key attends to all alike), the rest in f64.
    fn naive(&self) -> Vec<f64> {
        let (qkv, bias) = (self.qkv(), self.bias());
        let head = self.rows(&qkv);
        let at = |part: &[f32], row: usize, x: usize| part[row * self.stride() + x];
        let scale = 1.0 / (self.d as f32).sqrt();
        let mut out = Vec::new();
        for i in 0..self.queries {
            let scores: Vec<f64> = (0..self.keys)
                .map(|j| {
                    let dot: f64 = (0..self.d)
                        .map(|x| f64::from(at(head.q, i, x)) * f64::from(at(head.k, j, x)))
                        .sum();
                    let masked = (dot as f32) * scale + bias.as_ref().map_or(0.0, |b| b[j]);
                    f64::from(masked)
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for x in 0..self.d {
                let value: f64 = (0..self.keys)
                    .map(|j| weights[j] / sum * f64::from(at(head.v, j, x)))
                    .sum();
                out.push(value);
            }
        }
        out
    }
}

fn cases() -> Vec<Case> {
    let case = |queries, keys, d, mask| Case {
        queries,
        keys,
        d,
        mask,
    };
    vec![
        case(128, 128, 32, None),
        case(37, 37, 32, Some(Masking::EveryThird)),
        case(40, 23, 32, None),
        case(1, 1, 32, None),
        case(9, 17, 20, Some(Masking::EveryThird)),
        case(6, 5, 18, Some(Masking::All)),
        case(3, 130, 64, None),
    ]
}

#[test]
fn every_path_gives_the_portable_bits_near_the_float_attention() {
    let mut paths = Vec::new();
    for path in Int8Path::ALL.into_iter().skip(1) {
        if path.available() {
            paths.push(path);
        } else if let Err(message) = cpu::skip_missing(path.name()) {
            panic!("{message}");
        }
    }
    // One scratch for all cases (grown and shrunk), another fresh for each.
    let mut reused = Int8Scratch::default();
    for case in cases() {
        let portable = case.run(Int8Path::Portable, &mut Int8Scratch::default());
        let naive = case.naive();
        let largest = case.qkv().iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let diff = portable
            .iter()
            .zip(&naive)
            .map(|(&a, &b)| (f64::from(a) - b).abs())
            .fold(0.0, f64::max);
        let (q, k, d) = (case.queries, case.keys, case.d);
        println!(
            "{q}x{k}, d {d}: max abs diff to the f64 attention {diff:.5} (values up to {largest})"
        );
        assert!(diff < 0.03 * f64::from(largest), "{q}x{k} d {d}: {diff}");
        let again = case.run(Int8Path::Portable, &mut reused);
        assert_eq!(
            bits(&again),
            bits(&portable),
            "a reused scratch changed the result"
        );
        for &path in &paths {
            let got = case.run(path, &mut reused);
            assert_eq!(
                bits(&got),
                bits(&portable),
                "{} differs from portable",
                path.name()
            );
        }
    }
}

#[test]
fn a_query_seeing_nothing_attends_to_every_key_alike() {
    let case = Case {
        queries: 4,
        keys: 6,
        d: 16,
        mask: Some(Masking::All),
    };
    let context = case.run(Int8Path::Portable, &mut Int8Scratch::default());
    let qkv = case.qkv();
    for x in 0..case.d {
        // The mean of the (int8) values over the keys: every weight is 255 / (6 * 255).
        let values: Vec<f32> = (0..case.keys)
            .map(|j| qkv[j * case.stride() + 2 * case.d + x])
            .collect();
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / case.keys as f64;
        for i in 0..case.queries {
            let got = f64::from(context[i * case.d + x]);
            assert!(
                (got - mean).abs() < 0.02,
                "query {i}, column {x}: {got} vs {mean}"
            );
        }
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}
