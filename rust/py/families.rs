//! Python bindings of the family table (`rust/models/families.rs`): `families()`,
//! `canonical_config`, `canonical_tensor_name`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::json;
use crate::error::Error;
use crate::models::canonical as table;

/// The family table: `{"encoders": [...], "decoders": [...], "encoder_namespaces": [...]}`.
#[pyfunction]
fn families(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    json::to_py(py, &table::table_json())
}

/// A `config.json` dict with its family's fields translated to BERT's.
#[pyfunction]
#[pyo3(signature = (config, source = "config.json"))]
fn canonical_config<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyDict>,
    source: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let value = json::from_py(config.as_any(), source)?;
    let object = value
        .as_object()
        .ok_or_else(|| Error::config(source, "expected a JSON object"))?;
    let canonical = table::canonical_config(object, source)?;
    json::to_py(py, &serde_json::Value::Object(canonical))
}

/// The canonical (BERT) name of a stored tensor name.
#[pyfunction]
fn canonical_tensor_name(name: &str) -> String {
    table::canonical_tensor_name(name)
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(families, module)?)?;
    module.add_function(wrap_pyfunction!(canonical_config, module)?)?;
    module.add_function(wrap_pyfunction!(canonical_tensor_name, module)?)?;
    Ok(())
}
