//! The one rayon pool every parallel kernel runs on.
//!
//! rayon's global pool can be built only once, so oxiformer owns its pool and
//! rebuilds it when `set_num_threads` changes the count. Default size:
//! `OXIFORMER_NUM_THREADS`, else the cores available to the process.

use std::sync::{Arc, RwLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

fn default_num_threads() -> usize {
    std::env::var("OXIFORMER_NUM_THREADS")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
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
    let pool = build(default_num_threads())?;
    *guard = Some(Arc::clone(&pool));
    Ok(pool)
}

/// Resize the pool. Work already running keeps the old pool until it ends.
pub fn set_num_threads(num_threads: usize) -> Result<()> {
    if num_threads == 0 {
        return Err(Error::Threads(
            "the number of threads must be at least 1".into(),
        ));
    }
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
