//! The one rayon pool every parallel kernel runs on.
//!
//! rayon's global pool can be built only once, so oxiformer owns its pool and
//! rebuilds it when `set_num_threads` changes the count. Default size:
//! `OXIFORMER_NUM_THREADS`, else the cores available to the process. Either
//! way the count is at most [`max_num_threads`]: 4 x the CPUs available.

use std::sync::{Arc, RwLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

/// The environment variable that sets the default number of threads.
pub const ENV_NUM_THREADS: &str = "OXIFORMER_NUM_THREADS";

fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The most threads the pool may have: 4 x the CPUs available to the process.
/// Beyond the CPUs threads only take turns; a count far beyond them (a typo
/// such as 100000) would spend seconds spawning threads, and then fail.
pub fn max_num_threads() -> usize {
    available_cpus().saturating_mul(4)
}

/// `num_threads` if it is a usable count (1 to [`max_num_threads`]); `origin`
/// names where it comes from in the error.
fn check(num_threads: usize, origin: &str) -> Result<usize> {
    let max = max_num_threads();
    if num_threads == 0 {
        return Err(Error::input(format!(
            "{origin}: the number of threads must be at least 1"
        )));
    }
    if num_threads > max {
        return Err(Error::input(format!(
            "{origin}: {num_threads} threads is more than the limit of {max} \
             (4 x the {} CPUs available)",
            available_cpus()
        )));
    }
    Ok(num_threads)
}

fn default_num_threads() -> Result<usize> {
    match std::env::var(ENV_NUM_THREADS) {
        Ok(value) if !value.trim().is_empty() => {
            let origin = format!("{ENV_NUM_THREADS}={value}");
            let count = value.trim().parse::<usize>().map_err(|_| {
                Error::input(format!(
                    "{origin}: not a number of threads (an integer from 1 to {})",
                    max_num_threads()
                ))
            })?;
            check(count, &origin)
        }
        _ => Ok(available_cpus()),
    }
}

fn build(num_threads: usize) -> Result<Arc<ThreadPool>> {
    ThreadPoolBuilder::new()
        .num_threads(num_threads)
        .thread_name(|index| format!("oxiformer-{index}"))
        .build()
        .map(Arc::new)
        .map_err(|err| Error::Threads(err.to_string()))
}

/// The current pool, built on first use.
pub fn pool() -> Result<Arc<ThreadPool>> {
    if let Ok(guard) = POOL.read() {
        if let Some(pool) = guard.as_ref() {
            return Ok(Arc::clone(pool));
        }
    }
    let mut guard = POOL
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pool) = guard.as_ref() {
        return Ok(Arc::clone(pool));
    }
    let pool = build(default_num_threads()?)?;
    *guard = Some(Arc::clone(&pool));
    Ok(pool)
}

/// Resize the pool (1 to [`max_num_threads`] threads). Work already running
/// keeps the old pool until it ends.
pub fn set_num_threads(num_threads: usize) -> Result<()> {
    check(num_threads, "set_num_threads")?;
    let mut guard = POOL
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.as_ref().map(|pool| pool.current_num_threads()) != Some(num_threads) {
        *guard = Some(build(num_threads)?);
    }
    Ok(())
}

/// Number of threads of the current pool.
pub fn num_threads() -> Result<usize> {
    Ok(pool()?.current_num_threads())
}

/// Run `work` on the pool: every rayon call inside uses these threads.
pub fn run<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T> {
    Ok(pool()?.install(work))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_beyond_the_limit_are_refused_at_once() {
        let max = max_num_threads();
        assert!(max >= 4);
        let message = set_num_threads(max + 1)
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(
            message.contains(&format!("more than the limit of {max}")),
            "{message}"
        );
        assert!(set_num_threads(0).is_err());
        assert!(matches!(check(100_000, "x"), Err(Error::Input(_))));
        assert_eq!(check(max, "x").ok(), Some(max));
    }
}
