//! All PyO3 code lives here. Heavy work runs inside `py.detach`, with the GIL
//! released; the crate's `Error` is mapped once to the exception classes of
//! `oxiformer.errors`.

use pyo3::prelude::*;

use crate::error::Error;
use crate::threads;

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

#[pymodule(gil_used = false)]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(set_num_threads, module)?)?;
    module.add_function(wrap_pyfunction!(get_num_threads, module)?)?;
    module.add_function(wrap_pyfunction!(max_num_threads, module)?)?;
    model::register(module)?;
    tokenizer::register(module)?;
    Ok(())
}
