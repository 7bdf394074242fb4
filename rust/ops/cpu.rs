//! Which SIMD paths this CPU can run, and which ones the kernels use.
//!
//! Detected once. `OXIFORMER_SIMD` forces lower paths: `portable`, `avx2`, `avx512` (or
//! `neon` on aarch64) for fp32, optionally followed by an int8 path (`avx2,avx2` runs as an
//! AVX2-only CPU would, without AVX-VNNI). A path the CPU lacks is an error, reported when a
//! model loads. Every path computes the same bits (see the kernels' tests), so the choice
//! changes speed only.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The environment variable that forces paths.
pub const SIMD_ENV: &str = "OXIFORMER_SIMD";

/// The fp32 kernels' paths, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fp32Path {
    Portable,
    /// AVX2 + FMA, 8 lanes.
    Avx2,
    /// AVX-512 F/BW/VL (+ FMA), 16 lanes.
    Avx512,
    /// aarch64 NEON, 4 lanes.
    Neon,
}

/// The int8 kernels' paths, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Int8Path {
    Portable,
    /// AVX2 `vpmaddwd` on activations and weights widened to 16 bits.
    Avx2,
    /// AVX-VNNI `vpdpbusd` on 256 bits (Alder Lake, Zen 5).
    AvxVnni,
    /// AVX-512 VNNI `vpdpbusd` on 512 bits.
    Avx512Vnni,
    /// aarch64 NEON without the dot product: 8-bit multiplies into 16 bits (`smull`), added
    /// in pairs into i32 (`addp`, `sadalp`).
    Neon,
    /// aarch64 `sdot`-family dot products (the `dotprod` feature).
    NeonDot,
}

impl Fp32Path {
    pub const ALL: [Fp32Path; 4] = [
        Fp32Path::Portable,
        Fp32Path::Avx2,
        Fp32Path::Avx512,
        Fp32Path::Neon,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fp32Path::Portable => "portable",
            Fp32Path::Avx2 => "avx2",
            Fp32Path::Avx512 => "avx512",
            Fp32Path::Neon => "neon",
        }
    }

    /// Whether this CPU runs the path.
    pub fn available(self) -> bool {
        let cpu = features();
        match self {
            Fp32Path::Portable => true,
            Fp32Path::Avx2 => cpu.avx2 && cpu.fma,
            Fp32Path::Avx512 => cpu.avx2 && cpu.fma && cpu.avx512,
            Fp32Path::Neon => cpu.neon,
        }
    }

    /// The CPU features the path needs, for error messages.
    fn needs(self) -> &'static str {
        match self {
            Fp32Path::Portable => "nothing",
            Fp32Path::Avx2 => "avx2 and fma",
            Fp32Path::Avx512 => "avx512f, avx512bw, avx512vl and fma",
            Fp32Path::Neon => "an aarch64 CPU (neon)",
        }
    }
}

impl Int8Path {
    pub const ALL: [Int8Path; 6] = [
        Int8Path::Portable,
        Int8Path::Avx2,
        Int8Path::AvxVnni,
        Int8Path::Avx512Vnni,
        Int8Path::Neon,
        Int8Path::NeonDot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Portable => "portable",
            Int8Path::Avx2 => "avx2",
            Int8Path::AvxVnni => "avxvnni",
            Int8Path::Avx512Vnni => "avx512vnni",
            Int8Path::Neon => "neon",
            Int8Path::NeonDot => "neondot",
        }
    }

    pub fn available(self) -> bool {
        let cpu = features();
        match self {
            Int8Path::Portable => true,
            Int8Path::Avx2 => cpu.avx2,
            Int8Path::AvxVnni => cpu.avx2 && cpu.avx_vnni,
            Int8Path::Avx512Vnni => cpu.avx2 && cpu.avx512 && cpu.avx512_vnni,
            Int8Path::Neon => cpu.neon,
            Int8Path::NeonDot => cpu.neon && cpu.dotprod,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Int8Path::Portable => "nothing",
            Int8Path::Avx2 => "avx2",
            Int8Path::AvxVnni => "avx2 and avxvnni",
            Int8Path::Avx512Vnni => "avx512f, avx512bw, avx512vl and avx512vnni",
            Int8Path::Neon => "an aarch64 CPU (neon)",
            Int8Path::NeonDot => "an aarch64 CPU with dotprod",
        }
    }

    /// The widest int8 path whose registers are no wider than `fp32`'s.
    fn best_within(fp32: Fp32Path) -> Int8Path {
        let allowed: &[Int8Path] = match fp32 {
            Fp32Path::Portable => &[],
            Fp32Path::Avx2 => &[Int8Path::AvxVnni, Int8Path::Avx2],
            Fp32Path::Avx512 => &[Int8Path::Avx512Vnni, Int8Path::AvxVnni, Int8Path::Avx2],
            Fp32Path::Neon => &[Int8Path::NeonDot, Int8Path::Neon],
        };
        allowed
            .iter()
            .copied()
            .find(|path| path.available())
            .unwrap_or(Int8Path::Portable)
    }
}

/// The paths the kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paths {
    pub fp32: Fp32Path,
    pub int8: Int8Path,
}

impl Paths {
    /// The fastest paths this CPU has.
    pub fn best() -> Paths {
        let fp32 = [Fp32Path::Avx512, Fp32Path::Avx2, Fp32Path::Neon]
            .into_iter()
            .find(|path| path.available())
            .unwrap_or(Fp32Path::Portable);
        Paths {
            fp32,
            int8: Int8Path::best_within(fp32),
        }
    }

    /// Paths from an `OXIFORMER_SIMD` value: `FP32[,INT8]`.
    pub fn parse(value: &str) -> Result<Paths> {
        let mut names = value.split(',').map(str::trim);
        let fp32: Fp32Path = pick(names.next().unwrap_or_default(), "")?;
        let int8 = match names.next() {
            None => Int8Path::best_within(fp32),
            Some(name) => pick(name, " int8")?,
        };
        if let Some(extra) = names.next() {
            return Err(simd_error(format!(
                "has more than two paths (extra {extra:?}): write FP32[,INT8], e.g. avx2,avx2"
            )));
        }
        Ok(Paths { fp32, int8 })
    }
}

/// What [`pick`] needs of a kind of path.
trait Path: Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn available(self) -> bool;
    fn needs(self) -> &'static str;
}

impl Path for Fp32Path {
    const ALL: &'static [Self] = &Fp32Path::ALL;
    fn name(self) -> &'static str {
        Fp32Path::name(self)
    }
    fn available(self) -> bool {
        Fp32Path::available(self)
    }
    fn needs(self) -> &'static str {
        Fp32Path::needs(self)
    }
}

impl Path for Int8Path {
    const ALL: &'static [Self] = &Int8Path::ALL;
    fn name(self) -> &'static str {
        Int8Path::name(self)
    }
    fn available(self) -> bool {
        Int8Path::available(self)
    }
    fn needs(self) -> &'static str {
        Int8Path::needs(self)
    }
}

/// The path called `name` (any case), if this CPU runs it; `kind` names it in errors.
fn pick<P: Path>(name: &str, kind: &str) -> Result<P> {
    let name = name.to_ascii_lowercase();
    let known = || {
        P::ALL
            .iter()
            .map(|path| path.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let path = P::ALL
        .iter()
        .copied()
        .find(|path| path.name() == name)
        .ok_or_else(|| simd_error(format!("unknown{kind} path {name:?} (known: {})", known())))?;
    if !path.available() {
        return Err(simd_error(format!(
            "asks for the {}{kind} path, which needs {}; this CPU has: {}",
            path.name(),
            path.needs(),
            features().describe()
        )));
    }
    Ok(path)
}

fn simd_error(message: String) -> Error {
    Error::config(SIMD_ENV, message)
}

/// The paths in use: the best the CPU has, or what `OXIFORMER_SIMD` asks for. An
/// unusable `OXIFORMER_SIMD` is an error here (models check it when they load).
pub fn paths() -> Result<Paths> {
    static PATHS: OnceLock<std::result::Result<Paths, Error>> = OnceLock::new();
    PATHS
        .get_or_init(|| match std::env::var(SIMD_ENV) {
            Ok(value) if !value.trim().is_empty() => Paths::parse(&value),
            _ => Ok(Paths::best()),
        })
        .clone()
}

/// The paths the kernels run: [`paths`], or the best ones if `OXIFORMER_SIMD` is unusable
/// (then no model loads, so nothing reaches the kernels through the API).
pub fn active() -> Paths {
    paths().unwrap_or_else(|_| Paths::best())
}

/// The CPU features that decide the paths.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    pub avx2: bool,
    pub fma: bool,
    /// AVX-512 F, BW and VL together.
    pub avx512: bool,
    pub avx512_vnni: bool,
    pub avx_vnni: bool,
    pub neon: bool,
    pub dotprod: bool,
}

impl Features {
    /// The names of the features present.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("avx512f/bw/vl", self.avx512),
            ("avx512vnni", self.avx512_vnni),
            ("avxvnni", self.avx_vnni),
            ("neon", self.neon),
            ("dotprod", self.dotprod),
        ]
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| name)
        .collect()
    }

    fn describe(&self) -> String {
        let names = self.names();
        if names.is_empty() {
            "none of the SIMD features oxiformer uses".into()
        } else {
            names.join(", ")
        }
    }
}

/// This CPU's features, detected once.
pub fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Features {
    use std::arch::is_x86_feature_detected as has;
    Features {
        avx2: has!("avx2"),
        fma: has!("fma"),
        avx512: has!("avx512f") && has!("avx512bw") && has!("avx512vl"),
        avx512_vnni: has!("avx512vnni"),
        avx_vnni: has!("avxvnni"),
        ..Features::default()
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> Features {
    use std::arch::is_aarch64_feature_detected as has;
    Features {
        neon: has!("neon"),
        dotprod: has!("dotprod"),
        ..Features::default()
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Features {
    Features::default()
}

/// For tests: whether a path the host lacks may be skipped. `OXIFORMER_REQUIRE_SIMD` (a
/// comma list of path names, e.g. `avx512,avx512vnni`) makes such a skip a failure, so a
/// machine that should run a path cannot skip it silently.
pub fn skip_missing(path: &str) -> std::result::Result<(), String> {
    let required = std::env::var("OXIFORMER_REQUIRE_SIMD").unwrap_or_default();
    if required.split(',').any(|name| name.trim() == path) {
        return Err(format!(
            "OXIFORMER_REQUIRE_SIMD names {path}, but this CPU lacks it ({})",
            features().describe()
        ));
    }
    println!("skipped the {path} path: this CPU lacks it");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_paths() {
        assert_eq!(
            Paths::parse("portable").ok().map(|p| p.int8),
            Some(Int8Path::Portable)
        );
        let best = Paths::best();
        assert!(best.fp32.available() && best.int8.available());
        let forced = Paths::parse(best.fp32.name()).ok();
        assert_eq!(forced.map(|p| p.fp32), Some(best.fp32));
        for bad in ["avx3", "portable,avx9", "portable,portable,portable", ""] {
            let err = Paths::parse(bad).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains(SIMD_ENV)), "{bad}");
        }
        for path in Fp32Path::ALL.into_iter().filter(|p| !p.available()) {
            let err = Paths::parse(path.name()).err().map(|e| e.to_string());
            println!("{}: {err:?}", path.name());
            assert!(err.is_some_and(|e| e.contains("this CPU has")));
        }
    }
}
