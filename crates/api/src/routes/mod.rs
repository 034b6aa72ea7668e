//! Handlers of the public Images API v2. Thin: extract, check policy, call the registry or
//! the stores, render.

pub mod data;
pub mod health;
pub mod images;
pub mod import;
pub mod info;
pub mod locations;
pub mod members;
pub mod metadef_items;
pub mod metadefs;
pub mod openapi;
pub mod versions;

use glance_model::ImageId;

use crate::error::ApiError;

/// Parses an image id from a path segment; a malformed id is simply not found, as Glance.
pub fn image_id(raw: &str) -> Result<ImageId, ApiError> {
    raw.parse::<ImageId>()
        .map_err(|_| ApiError::not_found(format!("No image found with ID {raw}")))
}

/// Refuses a JSON document with U+0000 in any string or member name: PostgreSQL cannot store
/// it in text (the registry's query would fail), and on the other backends it would make
/// names and properties no client can show. 400 on every backend alike.
pub fn reject_nul(doc: &serde_json::Value) -> Result<(), ApiError> {
    use serde_json::Value;
    let bad = |s: &str| s.contains('\0');
    let found = match doc {
        Value::String(s) => bad(s),
        Value::Array(items) => return items.iter().try_for_each(reject_nul),
        Value::Object(map) => {
            for (k, v) in map {
                if bad(k) {
                    return Err(nul_error());
                }
                reject_nul(v)?;
            }
            false
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    };
    if found { Err(nul_error()) } else { Ok(()) }
}

fn nul_error() -> ApiError {
    ApiError::bad_request(
        "The request body holds a NUL character (\\u0000), which no image attribute, property, \
         tag or member may contain",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::reject_nul;
    use crate::app::has_encoded_nul;

    #[test]
    fn nul_is_found_wherever_it_is() {
        assert!(reject_nul(&json!({"name": "ok", "tags": ["a", "b"], "n": 1, "x": null})).is_ok());
        for doc in [
            json!("a\u{0}b"),
            json!({"name": "\u{0}"}),
            json!({"k\u{0}": "v"}),
            json!({"tags": ["ok", "\u{0}"]}),
            json!([{"op": "add", "path": "/x", "value": {"deep": ["\u{0}"]}}]),
        ] {
            let err = reject_nul(&doc).expect_err("NUL refused");
            assert!(err.to_string().contains("NUL"), "{err}");
        }
    }

    #[test]
    fn encoded_nul_in_uris() {
        assert!(has_encoded_nul("/v2/images/x/tags/a%00b"));
        assert!(has_encoded_nul("name=%00"));
        assert!(!has_encoded_nul("/v2/images/x/tags/a%100b"));
        assert!(!has_encoded_nul("name=a%2000&size_min=100"));
        assert!(!has_encoded_nul(""));
    }
}
