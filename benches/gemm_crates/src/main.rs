//! Single-precision GEMM crates on oxiformer's shapes: `gemm` (candle's kernel),
//! `matrixmultiply` and `faer`, oxiformer's own dense-layer kernel
//! (`rust/ops/matmul.rs`, weights packed once), and numpy's sgemm (the OpenBLAS
//! library in numpy's wheel, loaded at run time with `--openblas PATH`: the
//! `cblas_sgemm` that `numpy.matmul` calls on these operands), side by side in one
//! process, round-robin.
//!
//! Every linear shape is `C (M, N) = A (M, K) @ W^T` with `A` row-major and the
//! weight `W (N, K)` row-major (the HF Linear layout): each crate reads `W^T`
//! through strides, without a copy. The attention shapes read per-head views of
//! a fused QKV buffer `(seq, 3 * hidden)` exactly as the encoder does:
//! `scores = Q K^T` (M=seq, N=seq, K=head) and `ctx = P V` (M=seq, N=head, K=seq).
//!
//! Usage: gemm-compare --threads N [--reps R] [--min-ms T] [--only SUBSTR] [--extra]
//!        [--openblas PATH] [--pause-ms P]
//! `--pause-ms` (default 200 with OpenBLAS and 2+ threads, else 0): a busy pause
//! on every thread of the pool after every timed batch, so OpenBLAS's worker
//! threads, which spin for 2^28 cycles (about 0.1 s) after a call, are asleep
//! before the next library runs. Busy, not asleep: a core that slept makes the
//! next batch slow (`benches/RESULTS.md`).
//! `--extra`: linear shapes only, `gemm` on the (N, K) weight against `gemm` on the
//! weight transposed once to (K, N) row-major (and `faer`), instead of the 3 crates.
//! `matrixmultiply` reads its thread count once from `MATMUL_NUM_THREADS`, so a
//! process measures one thread count; run it once per count. Output: one TSV
//! line per (library, shape) on stdout (header first), a human summary on stderr.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `cblas_sgemm` of the ILP64 OpenBLAS in numpy's wheel (`blasint` is 64-bit; the
/// CBLAS enums are C ints).
type Sgemm = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i64,
    i64,
    i64,
    f32,
    *const f32,
    i64,
    *const f32,
    i64,
    f32,
    *mut f32,
    i64,
);
const CBLAS_ROW_MAJOR: i32 = 101;
const CBLAS_NO_TRANS: i32 = 111;
const CBLAS_TRANS: i32 = 112;

/// numpy's OpenBLAS, loaded once by `--openblas`.
struct OpenBlas {
    sgemm: Sgemm,
    _library: libloading::Library,
}
static OPENBLAS: OnceLock<OpenBlas> = OnceLock::new();

/// Load numpy's `libscipy_openblas64_` (numpy >= 2 wheels), set its thread count,
/// and describe it (core type, build config).
fn load_openblas(path: &str, threads: usize) -> String {
    use std::ffi::{c_char, c_int, CStr};
    // SAFETY: a shared library of numpy's wheel; its initialisers only set up OpenBLAS.
    let library = unsafe { libloading::Library::new(path) }
        .unwrap_or_else(|e| panic!("--openblas {path}: {e}"));
    let symbol = |name: &str| -> *const () {
        // SAFETY: only the address is taken here; each is cast to its C signature below.
        unsafe { library.get::<*const ()>(name.as_bytes()) }
            .map(|s| *s)
            .unwrap_or_else(|e| {
                panic!("{path}: no {name} (numpy's scipy-openblas64 expected): {e}")
            })
    };
    // SAFETY: the signatures of OpenBLAS's cblas.h and openblas_config.h (ILP64 build).
    let (sgemm, set_threads, corename, config) = unsafe {
        (
            std::mem::transmute::<*const (), Sgemm>(symbol("scipy_cblas_sgemm64_")),
            std::mem::transmute::<*const (), unsafe extern "C" fn(c_int)>(symbol(
                "scipy_openblas_set_num_threads64_",
            )),
            std::mem::transmute::<*const (), unsafe extern "C" fn() -> *const c_char>(symbol(
                "scipy_openblas_get_corename64_",
            )),
            std::mem::transmute::<*const (), unsafe extern "C" fn() -> *const c_char>(symbol(
                "scipy_openblas_get_config64_",
            )),
        )
    };
    // SAFETY: plain calls into the loaded library; the strings are static in it.
    let described = unsafe {
        set_threads(threads as c_int);
        format!(
            "{} (core {})",
            CStr::from_ptr(config()).to_string_lossy(),
            CStr::from_ptr(corename()).to_string_lossy()
        )
    };
    let blas = OpenBlas {
        sgemm,
        _library: library,
    };
    if OPENBLAS.set(blas).is_err() {
        panic!("OpenBLAS loaded twice");
    }
    described
}

/// Keep every thread of the pool spinning for `pause`.
fn busy(pause: Duration) {
    if pause.is_zero() {
        return;
    }
    let end = Instant::now() + pause;
    rayon::broadcast(|_| {
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    });
}

/// A CBLAS operand: (transpose flag, leading dimension) of a row- or column-major view.
fn cblas_view(v: View) -> (i32, i64) {
    if v.cs == 1 {
        (CBLAS_NO_TRANS, v.rs as i64)
    } else {
        assert_eq!(v.rs, 1, "OpenBLAS needs one unit stride");
        (CBLAS_TRANS, v.cs as i64)
    }
}

#[derive(Clone, Copy)]
struct View {
    rs: isize,
    cs: isize,
}

#[derive(Clone)]
struct Shape {
    name: String,
    m: usize,
    n: usize,
    k: usize,
    /// Strides of A (M, K) and B (K, N) inside their buffers.
    a: View,
    b: View,
    a_len: usize,
    b_len: usize,
    /// Attention shapes run single-threaded only (the encoder parallelises over heads).
    single_only: bool,
}

fn linear(model: &str, m: usize, n: usize, k: usize, what: &str) -> Shape {
    Shape {
        name: format!("{model} {what} M={m} N={n} K={k}"),
        m,
        n,
        k,
        a: View {
            rs: k as isize,
            cs: 1,
        },
        // W (N, K) row-major read as W^T (K, N): element (kk, nn) at nn * K + kk.
        b: View {
            rs: 1,
            cs: k as isize,
        },
        a_len: m * k,
        b_len: n * k,
        single_only: false,
    }
}

fn shapes() -> Vec<Shape> {
    let mut out = Vec::new();
    for &m in &[16usize, 128, 768, 4096] {
        for &(n, k, what) in &[
            (1152usize, 384usize, "qkv"),
            (384, 384, "attn-out"),
            (1536, 384, "ffn-up"),
            (384, 1536, "ffn-down"),
        ] {
            out.push(linear("MiniLM", m, n, k, what));
        }
    }
    for &(n, k, what) in &[
        (2304usize, 768usize, "qkv"),
        (768, 768, "attn-out"),
        (3072, 768, "ffn-up"),
        (768, 3072, "ffn-down"),
    ] {
        for &m in &[128usize, 4096] {
            out.push(linear("BERT-base", m, n, k, what));
        }
    }
    // Attention per head, MiniLM: seq 128, head 32, fused QKV row stride 1152.
    let (seq, head, qkv_stride) = (128usize, 32usize, 1152usize);
    out.push(Shape {
        name: format!("attn QK^T M={seq} N={seq} K={head}"),
        m: seq,
        n: seq,
        k: head,
        a: View {
            rs: qkv_stride as isize,
            cs: 1,
        },
        b: View {
            rs: 1,
            cs: qkv_stride as isize,
        },
        a_len: seq * qkv_stride,
        b_len: seq * qkv_stride,
        single_only: true,
    });
    out.push(Shape {
        name: format!("attn PV M={seq} N={head} K={seq}"),
        m: seq,
        n: head,
        k: seq,
        a: View {
            rs: seq as isize,
            cs: 1,
        },
        b: View {
            rs: qkv_stride as isize,
            cs: 1,
        },
        a_len: seq * seq,
        b_len: seq * qkv_stride,
        single_only: true,
    });
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lib {
    Gemm,
    MatrixMultiply,
    Faer,
    /// `gemm` with the weight transposed once at load time: `W^T (K, N)` row-major
    /// (`--extra`, linear shapes only).
    GemmKn,
    /// oxiformer's kernel (`rust/ops/matmul.rs`): dense layers over the weight packed
    /// once in 16-column bands; attention packs K^T or V on every call, as the encoder does.
    Oxiformer,
    /// numpy's sgemm: `cblas_sgemm` of the OpenBLAS in numpy's wheel (`--openblas`).
    Numpy,
}

impl Lib {
    fn name(self) -> &'static str {
        match self {
            Lib::Gemm => "gemm",
            Lib::MatrixMultiply => "matrixmultiply",
            Lib::Faer => "faer",
            Lib::GemmKn => "gemm-WT-contig",
            Lib::Oxiformer => "oxiformer",
            Lib::Numpy => "numpy",
        }
    }
}

/// `c (m, n, row-major) = a @ b`.
fn run(lib: Lib, s: &Shape, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    let (m, n, k) = (s.m, s.n, s.k);
    // `GemmKn` gets `b` already transposed to (K, N) row-major.
    let s = &if lib == Lib::GemmKn {
        Shape {
            b: View {
                rs: n as isize,
                cs: 1,
            },
            ..s.clone()
        }
    } else {
        s.clone()
    };
    assert!(c.len() >= m * n);
    match lib {
        Lib::Numpy => {
            let blas = OPENBLAS.get().expect("--openblas");
            let ((ta, lda), (tb, ldb)) = (cblas_view(s.a), cblas_view(s.b));
            // SAFETY: the views are inside `a` and `b` (`check_views`), `c` holds
            // (m, n) row-major; OpenBLAS reads and writes nothing else.
            unsafe {
                (blas.sgemm)(
                    CBLAS_ROW_MAJOR,
                    ta,
                    tb,
                    m as i64,
                    n as i64,
                    k as i64,
                    1.0,
                    a.as_ptr(),
                    lda,
                    b.as_ptr(),
                    ldb,
                    0.0,
                    c.as_mut_ptr(),
                    n as i64,
                )
            };
        }
        Lib::Oxiformer if s.single_only => {
            // Attention: one thread, `b` raw; packed here (timed), as per head in the encoder.
            thread_local! {
                static PACKED: std::cell::RefCell<Vec<f32>> = std::cell::RefCell::default();
            }
            PACKED.with_borrow_mut(|packed| {
                _core::ops::matmul::pack_panels_into(
                    packed,
                    b,
                    k,
                    n,
                    s.b.rs as usize,
                    s.b.cs as usize,
                );
                // SAFETY: `c` holds (m, n) row-major, written by this call alone.
                unsafe {
                    _core::ops::matmul::matmul_strided(
                        a,
                        s.a.rs as usize,
                        packed,
                        c.as_mut_ptr(),
                        n,
                        (m, k, n),
                        _core::ops::matmul::Epilogue::Overwrite,
                    )
                };
            });
        }
        Lib::Oxiformer => {
            // `b` is the packed bands; runs on rayon's global pool (built with `threads`).
            _core::ops::matmul::matmul(
                a,
                b,
                c,
                m,
                k,
                n,
                _core::ops::matmul::Epilogue::Overwrite,
            );
        }
        Lib::Gemm | Lib::GemmKn => {
            let par = if threads <= 1 {
                gemm::Parallelism::None
            } else {
                gemm::Parallelism::Rayon(threads)
            };
            // SAFETY: every index (i, j) < (m, n), (i, kk) < (m, k), (kk, j) < (k, n)
            // maps inside the buffers (checked by `check_views`).
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    s.a.cs,
                    s.a.rs,
                    b.as_ptr(),
                    s.b.cs,
                    s.b.rs,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        Lib::MatrixMultiply => {
            // SAFETY: as above.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    s.a.rs,
                    s.a.cs,
                    b.as_ptr(),
                    s.b.rs,
                    s.b.cs,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        }
        Lib::Faer => {
            let par = if threads <= 1 {
                faer::Par::Seq
            } else {
                faer::Par::rayon(threads)
            };
            // SAFETY: as above; the views only read/write in-bounds elements.
            let (av, bv, cv) = unsafe {
                (
                    faer::MatRef::<f32>::from_raw_parts(a.as_ptr(), m, k, s.a.rs, s.a.cs),
                    faer::MatRef::<f32>::from_raw_parts(b.as_ptr(), k, n, s.b.rs, s.b.cs),
                    faer::MatMut::<f32>::from_raw_parts_mut(c.as_mut_ptr(), m, n, n as isize, 1),
                )
            };
            faer::linalg::matmul::matmul(cv, faer::Accum::Replace, av, bv, 1.0f32, par);
        }
    }
}

fn check_views(s: &Shape) {
    let last_a = (s.m - 1) as isize * s.a.rs + (s.k - 1) as isize * s.a.cs;
    let last_b = (s.k - 1) as isize * s.b.rs + (s.n - 1) as isize * s.b.cs;
    assert!((last_a as usize) < s.a_len && (last_b as usize) < s.b_len);
}

fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn fnv1a(c: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in c {
        for byte in x.to_bits().to_le_bytes() {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Largest |c - exact| over a sample of entries, relative to sum |a||b| (f64 reference).
fn sampled_error(s: &Shape, a: &[f32], b: &[f32], c: &[f32]) -> f64 {
    let mut worst: f64 = 0.0;
    let picks = 64usize;
    for p in 0..picks {
        let i = (p * 7919) % s.m;
        let j = (p * 104_729) % s.n;
        let (mut exact, mut mag) = (0.0f64, 0.0f64);
        for kk in 0..s.k {
            let x = a[(i as isize * s.a.rs + kk as isize * s.a.cs) as usize] as f64;
            let y = b[(kk as isize * s.b.rs + j as isize * s.b.cs) as usize] as f64;
            exact += x * y;
            mag += (x * y).abs();
        }
        worst = worst.max((c[i * s.n + j] as f64 - exact).abs() / mag.max(1e-30));
    }
    worst
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|x, y| x.total_cmp(y));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let threads: usize = get("--threads").map_or(1, |v| v.parse().expect("--threads N"));
    let reps: usize = get("--reps").map_or(7, |v| v.parse().expect("--reps R"));
    let min_ms: f64 = get("--min-ms").map_or(40.0, |v| v.parse().expect("--min-ms T"));
    let only = get("--only");
    let extra = args.iter().any(|a| a == "--extra");
    let openblas = get("--openblas").map(|path| load_openblas(&path, threads));
    let pause_ms: u64 = get("--pause-ms").map_or(
        if openblas.is_some() && threads > 1 {
            200
        } else {
            0
        },
        |v| v.parse().expect("--pause-ms P"),
    );
    let pause = Duration::from_millis(pause_ms);

    // matrixmultiply reads this once, on its first call.
    std::env::set_var("MATMUL_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon pool");
    eprintln!(
        "threads={threads} reps={reps} min_ms={min_ms} avx2={} fma={} avx512f={} gemm_x86_v4_feature={}",
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("fma"),
        std::arch::is_x86_feature_detected!("avx512f"),
        cfg!(feature = "x86-v4"),
    );
    if let Some(described) = &openblas {
        eprintln!(
            "numpy's OpenBLAS: {described}; OPENBLAS_CORETYPE={:?} OPENBLAS_L2_SIZE={:?}; pause {pause_ms} ms",
            std::env::var("OPENBLAS_CORETYPE").ok(),
            std::env::var("OPENBLAS_L2_SIZE").ok(),
        );
    }

    let mut all_libs: Vec<Lib> = if extra {
        vec![Lib::Gemm, Lib::GemmKn, Lib::Faer]
    } else {
        vec![Lib::Gemm, Lib::MatrixMultiply, Lib::Faer, Lib::Oxiformer]
    };
    if openblas.is_some() {
        all_libs.insert(0, Lib::Numpy);
    }
    println!("lib\tshape\tthreads\tm\tn\tk\tmin_s\tmedian_s\tgflops_best\tgflops_median\thash\trel_err\tsame_bits_1t");
    for s in shapes() {
        if let Some(pat) = &only {
            if !s.name.contains(pat.as_str()) {
                continue;
            }
        }
        if s.single_only && (threads != 1 || extra) {
            continue;
        }
        let libs = &all_libs[..];
        check_views(&s);
        let a = fill(s.a_len, 1 + s.m as u64 * 31 + s.k as u64);
        let b = fill(s.b_len, 2 + s.n as u64 * 17 + s.k as u64);
        // W (N, K) transposed once, as a loader could: W^T (K, N) row-major.
        let packs = libs.contains(&Lib::Oxiformer) && !s.single_only;
        let bt: Vec<f32> = if extra || packs {
            let mut t = vec![0.0f32; s.k * s.n];
            for nn in 0..s.n {
                for kk in 0..s.k {
                    t[kk * s.n + nn] = b[nn * s.k + kk];
                }
            }
            t
        } else {
            Vec::new()
        };
        let bands: Vec<f32> = if packs {
            _core::ops::matmul::pack_panels(&bt, s.k, s.n)
        } else {
            Vec::new()
        };
        let b_for = |lib: Lib| match lib {
            Lib::GemmKn => &bt[..],
            Lib::Oxiformer if !s.single_only => &bands[..],
            _ => &b[..],
        };
        let flops = 2.0 * (s.m * s.n * s.k) as f64;
        let mut c: Vec<Vec<f32>> = libs.iter().map(|_| vec![0.0f32; s.m * s.n]).collect();

        // Warm up and pick a batch size per library: each timed batch >= min_ms.
        let mut iters = vec![1usize; libs.len()];
        for (li, &lib) in libs.iter().enumerate() {
            run(lib, &s, &a, b_for(lib), &mut c[li], threads);
            let t0 = Instant::now();
            run(lib, &s, &a, b_for(lib), &mut c[li], threads);
            let dt = t0.elapsed().as_secs_f64().max(1e-7);
            iters[li] = ((min_ms / 1e3 / dt).ceil() as usize).clamp(1, 1_000_000);
            busy(pause);
        }
        // Round-robin: rep r runs the libraries in a rotated order, so drift in
        // machine load hits every library alike.
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); libs.len()];
        for r in 0..reps {
            for off in 0..libs.len() {
                let li = (r + off) % libs.len();
                let t0 = Instant::now();
                for _ in 0..iters[li] {
                    let lib = libs[li];
                    run(
                        lib,
                        &s,
                        black_box(&a),
                        black_box(b_for(lib)),
                        &mut c[li],
                        threads,
                    );
                }
                black_box(&c[li]);
                samples[li].push(t0.elapsed().as_secs_f64() / iters[li] as f64);
                busy(pause);
            }
        }
        for (li, &lib) in libs.iter().enumerate() {
            let best = samples[li].iter().cloned().fold(f64::INFINITY, f64::min);
            let med = median(&mut samples[li]);
            let err = sampled_error(&s, &a, &b, &c[li]); // against the (N, K) weight
                                                         // Bitwise: the same call on one thread (gemm, faer pick it per call;
                                                         // matrixmultiply is compared across processes through `hash`).
            let same = match lib {
                Lib::MatrixMultiply | Lib::Numpy => "-".to_string(),
                _ if threads == 1 => "-".to_string(),
                _ => {
                    let mut c1 = vec![0.0f32; s.m * s.n];
                    run(lib, &s, &a, b_for(lib), &mut c1, 1);
                    (c1.iter()
                        .zip(&c[li])
                        .all(|(x, y)| x.to_bits() == y.to_bits()))
                    .to_string()
                }
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{:.6e}\t{:.6e}\t{:.2}\t{:.2}\t{:016x}\t{:.1e}\t{}",
                lib.name(),
                s.name,
                threads,
                s.m,
                s.n,
                s.k,
                best,
                med,
                flops / best / 1e9,
                flops / med / 1e9,
                fnv1a(&c[li]),
                err,
                same
            );
            eprintln!(
                "{:<44} {:<15} {:>2}t  best {:>7.2} GFLOPS  median {:>7.2}  err {:.1e}  same_bits_1t {}",
                s.name,
                lib.name(),
                threads,
                flops / best / 1e9,
                flops / med / 1e9,
                err,
                same
            );
        }
    }
}
