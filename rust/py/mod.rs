//! All PyO3 code lives here. Heavy work runs inside `py.detach`, with the GIL
//! released; the crate's `Error` is mapped once to the exception classes of
//! `oxiformer.errors`.

use pyo3::prelude::*;

use pyo3::types::PyDict;

use crate::cpu;
use crate::error::Error;
use crate::threads;

mod config;
mod decoder;
mod dense;
mod encoding;
mod families;
mod heads;
mod json;
mod model;
mod tokenizer;

pyo3::import_exception!(oxiformer.errors, OxiformerError);
pyo3::import_exception!(oxiformer.errors, ConfigError);
pyo3::import_exception!(oxiformer.errors, WeightsError);
pyo3::import_exception!(oxiformer.errors, InputError);
pyo3::import_exception!(oxiformer.errors, TokenizerError);

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            Error::Config { .. } => ConfigError::new_err(message),
            Error::Weights { .. } => WeightsError::new_err(message),
            Error::Input(_) => InputError::new_err(message),
            Error::Tokenizer(_) => TokenizerError::new_err(message),
            Error::Threads(_) => OxiformerError::new_err(message),
        }
    }
}

/// Resize the thread pool every oxiformer computation runs on (the GIL is
/// released while the threads start).
#[pyfunction]
fn set_num_threads(py: Python<'_>, num_threads: usize) -> PyResult<()> {
    Ok(py.detach(|| threads::set_num_threads(num_threads))?)
}

/// Number of threads of the pool.
#[pyfunction]
fn get_num_threads(py: Python<'_>) -> PyResult<usize> {
    Ok(py.detach(threads::num_threads)?)
}

/// The most threads `set_num_threads` accepts: 4 x the CPUs available.
#[pyfunction]
fn max_num_threads() -> usize {
    threads::max_num_threads()
}

/// The SIMD paths in use and what this CPU offers: `fp32` and `int8` (the paths the kernels
/// run, after `OXIFORMER_SIMD`), `features` (the CPU's), `available` (`{"fp32": [...],
/// "int8": [...]}`, the paths `OXIFORMER_SIMD` may ask for), `forced` (its value or None).
#[pyfunction]
fn simd_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let paths = cpu::paths()?;
    let info = PyDict::new(py);
    info.set_item("fp32", paths.fp32.name())?;
    info.set_item("int8", paths.int8.name())?;
    info.set_item("features", cpu::features().names())?;
    let available = PyDict::new(py);
    let fp32: Vec<&str> = cpu::Fp32Path::ALL
        .into_iter()
        .filter(|path| path.available())
        .map(cpu::Fp32Path::name)
        .collect();
    let int8: Vec<&str> = cpu::Int8Path::ALL
        .into_iter()
        .filter(|path| path.available())
        .map(cpu::Int8Path::name)
        .collect();
    available.set_item("fp32", fp32)?;
    available.set_item("int8", int8)?;
    info.set_item("available", available)?;
    let forced = std::env::var(cpu::SIMD_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    info.set_item("forced", forced)?;
    Ok(info)
}

#[pymodule(gil_used = false)]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(set_num_threads, module)?)?;
    module.add_function(wrap_pyfunction!(get_num_threads, module)?)?;
    module.add_function(wrap_pyfunction!(simd_info, module)?)?;
    module.add_function(wrap_pyfunction!(max_num_threads, module)?)?;
    config::register(module)?;
    model::register(module)?;
    families::register(module)?;
    decoder::register(module)?;
    dense::register(module)?;
    heads::register(module)?;
    tokenizer::register(module)?;
    Ok(())
}
