//! Fallible allocation of the buffers whose size the caller decides (a batch, a
//! padding length): `try_reserve` instead of `vec![..]`, so a request the
//! machine cannot hold is an error saying how much was needed, not an abort of
//! the whole process by the allocator.

/// `len` copies of `value`, or `None` when the memory cannot be had.
pub fn try_filled<T: Clone>(len: usize, value: T) -> Option<Vec<T>> {
    let mut values = Vec::new();
    values.try_reserve_exact(len).ok()?;
    values.resize(len, value);
    Some(values)
}

/// The size of `count` values of `T` in bytes (saturating: for messages).
pub fn bytes_of<T>(count: usize) -> usize {
    count.saturating_mul(std::mem::size_of::<T>())
}

/// A size in bytes for people: "512 bytes", "3.2 MiB", "1.5 GiB".
pub fn human(bytes: usize) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_refusals() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(human(1536 << 20), "1.5 GiB");
        assert_eq!(bytes_of::<f32>(usize::MAX), usize::MAX);
        assert_eq!(try_filled(3, 7u8), Some(vec![7, 7, 7]));
        // More than any address space: refused, not an abort.
        assert!(try_filled::<u64>(usize::MAX / 4, 0).is_none());
    }
}
