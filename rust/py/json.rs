//! JSON values to and from Python objects (dict, list, str, int, float, bool,
//! None) directly: configurations cross the boundary as objects, not as text.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::error::Error;

/// Nesting deeper than this is refused (serde_json's own limit): a recursive walk
/// must not overflow the stack on a hostile object.
const MAX_DEPTH: usize = 128;

/// A JSON value as the Python object `json.loads` would give.
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                integer.into_pyobject(py)?.into_any()
            } else if let Some(integer) = number.as_u64() {
                integer.into_pyobject(py)?.into_any()
            } else {
                number
                    .as_f64()
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any()
            }
        }
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(fields) => {
            let dict = PyDict::new(py);
            for (key, item) in fields {
                dict.set_item(key, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// A Python object as JSON: what `json.dumps` accepts, with string keys and finite
/// floats; anything else is a `ConfigError` naming `source` and the key.
pub(crate) fn from_py(object: &Bound<'_, PyAny>, source: &str) -> PyResult<Value> {
    convert(object, source, "", 0)
}

fn convert(object: &Bound<'_, PyAny>, source: &str, path: &str, depth: usize) -> PyResult<Value> {
    let refuse = |what: String| -> PyErr {
        let place = if path.is_empty() {
            "the configuration".to_string()
        } else {
            format!("'{path}'")
        };
        Error::config(source, format!("{place}: {what}")).into()
    };
    if depth > MAX_DEPTH {
        return Err(refuse(format!("nested more than {MAX_DEPTH} levels deep")));
    }
    if object.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = object.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if object.is_instance_of::<PyInt>() {
        if let Ok(integer) = object.extract::<i64>() {
            return Ok(Value::from(integer));
        }
        if let Ok(integer) = object.extract::<u64>() {
            return Ok(Value::from(integer));
        }
        // Beyond 64 bits, a float, as serde_json reads such a number from text.
        let float = object.extract::<f64>().ok().and_then(Number::from_f64);
        return float
            .map(Value::Number)
            .ok_or_else(|| refuse("an integer too large for JSON".to_string()));
    }
    if let Ok(float) = object.cast::<PyFloat>() {
        return Number::from_f64(float.value())
            .map(Value::Number)
            .ok_or_else(|| refuse(format!("{} is not a finite number", float.value())));
    }
    if let Ok(text) = object.cast::<PyString>() {
        return Ok(Value::String(text.to_cow()?.into_owned()));
    }
    if let Ok(dict) = object.cast::<PyDict>() {
        let mut fields = Map::new();
        for (key, item) in dict.iter() {
            let key = key
                .cast::<PyString>()
                .map_err(|_| refuse(format!("a key that is not a str: {key}")))?
                .to_cow()?
                .into_owned();
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            fields.insert(key, convert(&item, source, &inner, depth + 1)?);
        }
        return Ok(Value::Object(fields));
    }
    if object.is_instance_of::<PyList>() || object.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (index, item) in object.try_iter()?.enumerate() {
            items.push(convert(
                &item?,
                source,
                &format!("{path}[{index}]"),
                depth + 1,
            )?);
        }
        return Ok(Value::Array(items));
    }
    let type_name = object.get_type().name().map(|name| name.to_string());
    Err(refuse(format!(
        "a {} is not a JSON value",
        type_name.unwrap_or_else(|_| "?".into())
    )))
}
