//! `Context`: the JSON key/value document a pipeline's tasks read and write.
//!
//! A task's input context is the pipeline input, then each dependency's output merged in declared
//! dependency order (later wins); [`Context::merge`] is that merge.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors from context operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// `insert` found the key already present.
    #[error("context key `{0}` already exists (use update or insert_or_update)")]
    KeyExists(String),
    /// `update` (or a typed read that requires it) found no such key.
    #[error("context key `{0}` not found")]
    KeyNotFound(String),
    /// A value could not be converted to or from the requested type.
    #[error("context key `{key}`: {message}")]
    Conversion {
        /// The key concerned.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// The document is not a JSON object.
    #[error("a context must be a JSON object, got {0}")]
    NotAnObject(String),
    /// The text is not JSON, or its values do not fit the context's value type.
    #[error("not a context document: {0}")]
    InvalidDocument(String),
}

/// A key/value document; keys are kept in sorted order, so its JSON form is deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Context<V = Value> {
    data: BTreeMap<String, V>,
}

impl<V> Default for Context<V> {
    fn default() -> Self {
        Self { data: BTreeMap::new() }
    }
}

impl<V> Context<V> {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key`; fails if it is already present.
    pub fn insert(&mut self, key: impl Into<String>, value: V) -> Result<(), Error> {
        use std::collections::btree_map::Entry;
        match self.data.entry(key.into()) {
            Entry::Occupied(e) => Err(Error::KeyExists(e.key().clone())),
            Entry::Vacant(e) => {
                e.insert(value);
                Ok(())
            }
        }
    }

    /// Replaces the value of `key`; fails if it is missing.
    pub fn update(&mut self, key: impl Into<String>, value: V) -> Result<(), Error> {
        let key = key.into();
        match self.data.get_mut(&key) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(Error::KeyNotFound(key)),
        }
    }

    /// Sets `key`, whether or not it exists.
    pub fn insert_or_update(&mut self, key: impl Into<String>, value: V) {
        self.data.insert(key.into(), value);
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.data.get(key)
    }

    /// Every key and value, in key order.
    pub fn data(&self) -> &BTreeMap<String, V> {
        &self.data
    }

    /// The keys and values, taken out of the context.
    pub fn into_data(self) -> BTreeMap<String, V> {
        self.data
    }

    /// A context holding `data` (any map or list of pairs; a repeated key keeps its last value).
    pub fn from_data(data: impl IntoIterator<Item = (String, V)>) -> Self {
        Self { data: data.into_iter().collect() }
    }

    /// A copy of the keys and values (upstream Cloacina's `clone_data`; the same as `clone`).
    pub fn clone_data(&self) -> Self
    where
        V: Clone,
    {
        self.clone()
    }

    /// Removes `key` and returns its value, if present.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.data.remove(key)
    }

    /// True if `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.data.contains_key(key)
    }

    /// Keys in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Copies every key of `other` into `self`; on a clash `other` wins.
    pub fn merge(&mut self, other: &Context<V>)
    where
        V: Clone,
    {
        for (k, v) in &other.data {
            self.data.insert(k.clone(), v.clone());
        }
    }
}

impl<V: Serialize> Context<V> {
    /// The context as JSON text (upstream Cloacina's `to_json`).
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(&self.data).map_err(|e| Error::InvalidDocument(e.to_string()))
    }
}

impl<V: DeserializeOwned> Context<V> {
    /// A context from JSON text holding an object (upstream Cloacina's `from_json`).
    pub fn from_json(json: String) -> Result<Self, Error> {
        match serde_json::from_str::<Value>(&json) {
            Ok(Value::Object(_)) => {
                serde_json::from_str(&json).map(|data| Self { data }).map_err(|e| Error::InvalidDocument(e.to_string()))
            }
            Ok(other) => Err(Error::NotAnObject(other.to_string())),
            Err(e) => Err(Error::InvalidDocument(e.to_string())),
        }
    }
}

impl Context<Value> {
    /// The value of `key` converted to `T`; `Ok(None)` if the key is missing.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.data
            .get(key)
            .map(|v| {
                serde_json::from_value(v.clone())
                    .map_err(|e| Error::Conversion { key: key.to_owned(), message: e.to_string() })
            })
            .transpose()
    }

    /// The value of `key` converted to `T`; [`Error::KeyNotFound`] if it is missing (upstream
    /// Cloacina's typed `get_required`: `let rows: Vec<Row> = ctx.get_required("rows")?;`).
    pub fn get_required<T: DeserializeOwned>(&self, key: &str) -> Result<T, Error> {
        self.get_as(key)?.ok_or_else(|| Error::KeyNotFound(key.to_owned()))
    }

    /// Sets `key` to `value` serialised to JSON, replacing any value it had (as upstream Cloacina's
    /// `insert_as`; [`insert`](Self::insert) is the one that refuses an existing key). Takes the
    /// value or a reference to it.
    pub fn insert_as<T: Serialize>(&mut self, key: impl Into<String>, value: T) -> Result<(), Error> {
        let key = key.into();
        let json =
            serde_json::to_value(&value).map_err(|e| Error::Conversion { key: key.clone(), message: e.to_string() })?;
        self.data.insert(key, json);
        Ok(())
    }

    /// The context as one JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(self.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// A context from a JSON object (`null` gives an empty context).
    pub fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Object(map) => Ok(Self { data: map.into_iter().collect() }),
            Value::Null => Ok(Self::new()),
            other => Err(Error::NotAnObject(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_accessors_and_json_text() {
        let mut ctx = Context::new();
        ctx.insert("a", json!(1)).expect("insert");
        assert_eq!(ctx.get_required::<u32>("a"), Ok(1));
        assert_eq!(ctx.get_required::<u32>("b"), Err(Error::KeyNotFound("b".into())));
        assert!(matches!(ctx.get_required::<String>("a"), Err(Error::Conversion { .. })));
        ctx.insert_as("owned", vec![1, 2]).expect("by value");
        assert_eq!(ctx.get_required::<Vec<u8>>("owned"), Ok(vec![1, 2]));
        let text = ctx.to_json().expect("text");
        assert_eq!(text, r#"{"a":1,"owned":[1,2]}"#);
        assert_eq!(Context::<Value>::from_json(text).expect("parse"), ctx);
        assert!(matches!(Context::<Value>::from_json("[1]".into()), Err(Error::NotAnObject(_))));
        let broken = Context::<Value>::from_json("{".into()).expect_err("not JSON");
        assert!(matches!(broken, Error::InvalidDocument(_)), "{broken}");
        assert!(broken.to_string().starts_with("not a context document"), "{broken}");
        let copy = Context::from_data(ctx.clone_data().into_data());
        assert_eq!(copy.data(), ctx.data());
    }

    #[test]
    fn insert_as_overwrites_as_upstream() {
        let mut ctx = Context::new();
        ctx.insert_as("n", 1).expect("first");
        ctx.insert_as("n", "two").expect("an existing key is replaced");
        assert_eq!(ctx.get("n"), Some(&json!("two")));
        assert_eq!(ctx.get_as::<String>("n").expect("typed"), Some("two".to_owned()));
    }

    #[test]
    fn insert_update_and_remove_keep_their_contracts() {
        let mut ctx = Context::new();
        ctx.insert("a", json!(1)).expect("insert");
        assert_eq!(ctx.insert("a", json!(2)), Err(Error::KeyExists("a".into())));
        assert_eq!(ctx.update("b", json!(2)), Err(Error::KeyNotFound("b".into())));
        ctx.update("a", json!(3)).expect("update");
        ctx.insert_or_update("b", json!(4));
        assert_eq!((ctx.get("a"), ctx.get("b")), (Some(&json!(3)), Some(&json!(4))));
        assert_eq!(ctx.remove("a"), Some(json!(3)));
        assert_eq!(ctx.remove("a"), None);
    }

    #[test]
    fn typed_access_and_json_round_trip() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Row {
            id: u32,
            name: String,
        }
        let mut ctx = Context::new();
        ctx.insert_as("row", &Row { id: 7, name: "x".into() }).expect("insert_as");
        assert_eq!(ctx.get_as::<Row>("row").expect("typed"), Some(Row { id: 7, name: "x".into() }));
        assert_eq!(ctx.get_as::<Row>("missing").expect("missing"), None);
        assert!(matches!(ctx.get_as::<u32>("row"), Err(Error::Conversion { .. })));
        let back = Context::from_value(ctx.to_value()).expect("round trip");
        assert_eq!(back, ctx);
        assert!(Context::from_value(json!([1])).is_err());
    }

    #[test]
    fn merge_lets_the_later_context_win() {
        let mut base = Context::from_value(json!({"a": 1, "b": 1})).expect("ctx");
        base.merge(&Context::from_value(json!({"b": 2, "c": 2})).expect("ctx"));
        assert_eq!(base.to_value(), json!({"a": 1, "b": 2, "c": 2}));
    }
}
