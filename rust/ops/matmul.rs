//! Matrix multiply through the `gemm` crate (the kernel candle uses on CPU).
//!
//! `gemm` takes arbitrary row and column strides, so transposed weights and
//! per-head slices of the fused QKV buffer need no copy.

/// How a multiply may use threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// On the calling thread only (the caller is already parallel).
    Single,
    /// Spread over the current rayon pool.
    Pool,
}

/// A read-only strided matrix: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A view; panics if it would reach past `data` (an internal bug, never user data:
    /// every shape is checked before the kernels run).
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(last < data.len(), "matrix view past the end of its buffer");
        }
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A dense row-major matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose of a dense row-major `rows x cols` matrix (no copy).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, cols, rows, 1, cols)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn get(&self, row: usize, col: usize) -> f32 {
        self.data[row * self.row_stride + col * self.col_stride]
    }
}

/// `out (m, n) = scale * a (m, k) @ b (k, n)`, or `out += ...` when `accumulate`.
/// `out` is row-major with row stride `out_row_stride`.
pub fn matmul(
    a: MatRef<'_>,
    b: MatRef<'_>,
    out: &mut [f32],
    out_row_stride: usize,
    scale: f32,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * out_row_stride + n <= out.len() && n <= out_row_stride,
        "output view past the end of its buffer"
    );
    if k == 0 {
        if !accumulate {
            for row in out.chunks_mut(out_row_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = match parallelism {
        Parallelism::Single => gemm::Parallelism::None,
        Parallelism::Pool => match rayon::current_num_threads() {
            0 | 1 => gemm::Parallelism::None,
            threads => gemm::Parallelism::Rayon(threads),
        },
    };
    // SAFETY: the asserts above and in `MatRef::new` keep every element that
    // gemm reads or writes inside its slice; `out` is borrowed mutably, so it
    // cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn naive(a: MatRef<'_>, b: MatRef<'_>, scale: f32) -> Vec<f32> {
        let mut out = vec![0.0f32; a.rows() * b.cols()];
        for i in 0..a.rows() {
            for j in 0..b.cols() {
                let sum: f64 = (0..a.cols())
                    .map(|p| f64::from(a.get(i, p)) * f64::from(b.get(p, j)))
                    .sum();
                out[i * b.cols() + j] = (sum * f64::from(scale)) as f32;
            }
        }
        out
    }

    fn max_abs_diff(x: &[f32], y: &[f32]) -> f32 {
        x.iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn matches_naive_on_strided_views() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (64, 48, 130),
            (2, 384, 1),
        ] {
            let a_data = pseudo_random(m * k, 1);
            let b_data = pseudo_random(k * n, 2);
            let a = MatRef::row_major(&a_data, m, k);
            // b as the transpose of an (n, k) buffer, like a Linear weight.
            let b = MatRef::transposed(&b_data, n, k);
            let expected = naive(a, b, 0.5);
            for parallelism in [Parallelism::Single, Parallelism::Pool] {
                let mut out = vec![0.0; m * n];
                matmul(a, b, &mut out, n, 0.5, false, parallelism);
                let diff = max_abs_diff(&out, &expected);
                println!("matmul {m}x{k}x{n} {parallelism:?}: max abs diff {diff:e}");
                assert!(diff < 1e-4, "{m}x{k}x{n}: {diff}");
            }
        }
    }

    #[test]
    fn accumulates_into_strided_output() {
        let (m, k, n, stride) = (4, 6, 3, 5);
        let a_data = pseudo_random(m * k, 3);
        let b_data = pseudo_random(k * n, 4);
        let a = MatRef::row_major(&a_data, m, k);
        let b = MatRef::row_major(&b_data, k, n);
        let expected = naive(a, b, 1.0);
        let mut out = vec![1.0; m * stride];
        matmul(a, b, &mut out, stride, 1.0, true, Parallelism::Single);
        for i in 0..m {
            for j in 0..stride {
                let want = if j < n {
                    expected[i * n + j] + 1.0
                } else {
                    1.0
                };
                assert!((out[i * stride + j] - want).abs() < 1e-5);
            }
        }
    }
}
