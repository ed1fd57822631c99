//! What Cloacina accepts from outside (an operator, an API client, task code), checked the same
//! way on both backends: text holds no NUL character (PostgreSQL cannot store one in `text` or
//! `jsonb`; SQLite could, and such a row would then break `db copy` to PostgreSQL) and stays
//! within a length limit, and JSON documents hold no NUL in any key or string. Every surface
//! and the engine call these functions; nothing else decides it.

use std::borrow::Cow;

use serde_json::Value;

/// Longest workflow, task or trigger name accepted, in characters (the authoring model's rule).
pub const MAX_NAME: usize = cloacina_workflow::workflow::MAX_NAME;
/// Longest cron expression accepted, in characters.
pub const MAX_CRON_EXPRESSION: usize = 256;
/// Longest time zone name accepted, in characters.
pub const MAX_TIMEZONE: usize = 64;

/// A value refused, naming the field (or JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {reason}")]
pub struct Invalid {
    /// The field, or the JSON path inside a document (`context.files[2].name`).
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

/// Refuses `value` for `field` when it holds a NUL character or is longer than `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.contains('\0') {
        return Err(Invalid { field: field.to_owned(), reason: "holds a NUL character (U+0000)".to_owned() });
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Invalid { field: field.to_owned(), reason: format!("is {chars} characters long; at most {max}") });
    }
    Ok(())
}

/// Refuses a JSON document with a NUL character in any key or string, naming the first such
/// place as a path under `field`.
pub fn document(field: &str, value: &Value) -> Result<(), Invalid> {
    match nul_path(value, field.to_owned()) {
        Some(path) => Err(Invalid { field: path, reason: "holds a NUL character (U+0000)".to_owned() }),
        None => Ok(()),
    }
}

/// [`document`] for a context (without building its JSON document).
pub fn context(field: &str, context: &crate::Context<Value>) -> Result<(), Invalid> {
    let found = context.data().iter().find_map(|(k, v)| {
        let path = format!("{field}.{}", k.replace('\0', "\\u0000"));
        if k.contains('\0') {
            Some(path)
        } else {
            nul_path(v, path)
        }
    });
    match found {
        Some(path) => Err(Invalid { field: path, reason: "holds a NUL character (U+0000)".to_owned() }),
        None => Ok(()),
    }
}

fn nul_path(value: &Value, here: String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(here),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_path(v, format!("{here}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let key = k.replace('\0', "\\u0000");
            let path = format!("{here}.{key}");
            if k.contains('\0') {
                Some(path)
            } else {
                nul_path(v, path)
            }
        }),
        _ => None,
    }
}

/// Text the engine writes itself (an error message from task code, say) made storable: NUL
/// characters become U+FFFD, so recording an outcome can never fail on its text.
pub fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_with_nul_or_over_the_limit_is_refused_by_name() {
        assert!(text("workflow", "etl", MAX_NAME).is_ok());
        assert_eq!(
            text("workflow", "e\0tl", MAX_NAME).expect_err("nul").to_string(),
            "`workflow` holds a NUL character (U+0000)"
        );
        let long = "é".repeat(MAX_NAME + 1);
        assert!(text("workflow", &long, MAX_NAME)
            .expect_err("long")
            .to_string()
            .contains("256 characters long; at most 255"));
        assert!(text("workflow", &"é".repeat(MAX_NAME), MAX_NAME).is_ok(), "characters, not bytes");
    }

    #[test]
    fn documents_name_the_path_of_the_first_nul() {
        assert!(document("context", &json!({"a": [1, "x", {"b": null}]})).is_ok());
        let at = |v: Value| document("context", &v).expect_err("nul").field;
        assert_eq!(at(json!({"a": "x\u{0}"})), "context.a");
        assert_eq!(at(json!({"a": [1, {"b": ["ok", "\u{0}"]}]})), "context.a[1].b[1]");
        assert_eq!(at(json!({"k\u{0}": 1})), "context.k\\u0000");
    }

    #[test]
    fn storable_text_keeps_everything_but_nul() {
        assert!(matches!(storable("fine"), Cow::Borrowed("fine")));
        assert_eq!(storable("a\0b"), "a\u{FFFD}b");
    }
}
