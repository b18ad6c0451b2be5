//! The JSON configuration helpers shared by the channel configuration (`channel/config.rs`) and
//! the manager configuration (`runtime/config.rs`), and the error both report.
//!
//! Parsed by hand over `serde_json::Value` so that every error names the full path of the
//! offending key (`channelDefaults.sdsConfig.maxRetransmissions: ...`) and unknown keys are
//! refused. Imports nothing from the crate: both layers use it from below.

use serde_json::{Map, Value};

/// A configuration error, naming the key (its full dotted path) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not JSON at all.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A key the layout does not have.
    #[error("{path}: unknown key (expected one of: {expected})")]
    UnknownKey { path: String, expected: String },
    /// A value of the wrong JSON type (`expected` reads "an object", "a string", ...).
    #[error("{path}: expected {expected}")]
    WrongType { path: String, expected: &'static str },
    /// A number outside its allowed range.
    #[error("{path}: {value} is out of range {min}..={max}")]
    OutOfRange { path: String, value: String, min: String, max: String },
    /// A value that is well-typed but impossible (unknown name, a chunk that cannot fit, ...).
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl ConfigError {
    /// The dotted path of the offending key (`None` for a JSON syntax error).
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Json(_) => None,
            ConfigError::UnknownKey { path, .. }
            | ConfigError::WrongType { path, .. }
            | ConfigError::OutOfRange { path, .. }
            | ConfigError::Invalid { path, .. } => Some(path),
        }
    }

    /// A [`ConfigError::Invalid`] naming `path`.
    pub(crate) fn invalid(path: &str, reason: impl std::fmt::Display) -> Self {
        ConfigError::Invalid { path: path.to_owned(), reason: reason.to_string() }
    }
}

/// A JSON object being read.
pub(crate) type Obj = Map<String, Value>;

/// Parses a configuration text; `None` or blank means "no configuration" (defaults).
pub(crate) fn parse_root(json: Option<&str>) -> Result<Option<Value>, ConfigError> {
    let Some(s) = json.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    serde_json::from_str(s).map(Some).map_err(|e| ConfigError::Json(e.to_string()))
}

pub(crate) fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, ConfigError> {
    v.as_object().ok_or_else(|| wrong_type(path, "an object"))
}

fn wrong_type(path: &str, expected: &'static str) -> ConfigError {
    ConfigError::WrongType { path: path.to_owned(), expected }
}

/// `path.key` (or `key` at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Refuses any key not in `allowed`.
pub(crate) fn check_keys(obj: &Obj, path: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ConfigError::UnknownKey { path: join(path, k), expected: allowed.join(", ") }),
        None => Ok(()),
    }
}

/// An optional non-negative integer in `min..=max`.
pub(crate) fn get_u64(obj: &Obj, path: &str, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
    let Some(v) = obj.get(key) else { return Ok(None) };
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        Some(n) => Err(out_of_range(&join(path, key), n, min, max)),
        None => Err(wrong_type(&join(path, key), "a non-negative integer")),
    }
}

/// An optional number in `min..=max`.
pub(crate) fn get_f64(obj: &Obj, path: &str, key: &str, min: f64, max: f64) -> Result<Option<f64>, ConfigError> {
    let Some(v) = obj.get(key) else { return Ok(None) };
    match v.as_f64() {
        Some(n) if n >= min && n <= max => Ok(Some(n)),
        Some(n) => Err(out_of_range(&join(path, key), n, min, max)),
        None => Err(wrong_type(&join(path, key), "a number")),
    }
}

fn out_of_range(path: &str, value: impl ToString, min: impl ToString, max: impl ToString) -> ConfigError {
    ConfigError::OutOfRange { path: path.to_owned(), value: value.to_string(), min: min.to_string(), max: max.to_string() }
}

/// An optional string.
pub(crate) fn get_str<'a>(obj: &'a Obj, path: &str, key: &str) -> Result<Option<&'a str>, ConfigError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(&join(path, key), "a string")),
    }
}

/// An optional boolean.
pub(crate) fn get_bool(obj: &Obj, path: &str, key: &str) -> Result<Option<bool>, ConfigError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong_type(&join(path, key), "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_full_path_and_keep_their_wording() {
        let v = parse_root(Some(r#"{"a": {"n": 7, "s": 1, "x": true}}"#)).unwrap().unwrap();
        let a = as_object(&v["a"], "root.a").unwrap();
        let e = get_u64(a, "root.a", "n", 0, 5).unwrap_err();
        assert_eq!(e.to_string(), "root.a.n: 7 is out of range 0..=5");
        assert_eq!(e.path(), Some("root.a.n"));
        assert_eq!(get_str(a, "root.a", "s").unwrap_err().to_string(), "root.a.s: expected a string");
        let e = check_keys(a, "root.a", &["n", "s"]).unwrap_err();
        assert_eq!(e, ConfigError::UnknownKey { path: "root.a.x".into(), expected: "n, s".into() });
        assert_eq!(as_object(&v["a"]["n"], "root.a.n").unwrap_err().to_string(), "root.a.n: expected an object");
        assert!(matches!(parse_root(Some("{")), Err(ConfigError::Json(_))));
        assert_eq!(parse_root(Some("  ")), Ok(None));
    }
}
