//! Python bindings of the family table (`rust/models/families.rs`): `families()`,
//! `canonical_config`, `canonical_tensor_name`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::model::json_text;
use crate::error::Error;
use crate::models::canonical as table;

/// `json.loads(text)`: table values and configs cross as JSON.
fn from_json<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (value.to_string(),))
}

/// The family table: `{"encoders": [...], "decoders": [...], "encoder_namespaces": [...]}`.
#[pyfunction]
fn families(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    from_json(py, &table::table_json())
}

/// A `config.json` dict with its family's fields translated to BERT's.
#[pyfunction]
#[pyo3(signature = (config, source = "config.json"))]
fn canonical_config<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyDict>,
    source: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let text = json_text(config.as_any())?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| Error::config(source, format!("invalid config: {err}")))?;
    let object = value.as_object().cloned().unwrap_or_default();
    let canonical = table::canonical_config(&object, source)?;
    from_json(py, &serde_json::Value::Object(canonical))
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
