//! Timestamps: UTC, whole seconds, written as Glance writes them (`YYYY-MM-DDThh:mm:ssZ`).

use chrono::{NaiveDateTime, Timelike, Utc};

/// The current UTC time truncated to whole seconds. Every timestamp we store goes through
/// this, so all three databases hold the same value (MySQL `DATETIME` has no fraction).
pub fn now() -> NaiveDateTime {
    let t = Utc::now().naive_utc();
    t.with_nanosecond(0).unwrap_or(t)
}

/// Formats a timestamp the way Glance's `isotime` does.
pub fn isotime(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an ISO-8601 timestamp as clients send it in filters: `2026-01-02T03:04:05Z`,
/// with an offset, with fractional seconds, or without a zone (taken as UTC).
pub fn parse_iso(s: &str) -> Option<NaiveDateTime> {
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.naive_utc());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// Serde helpers for a required timestamp in Glance's format.
pub mod iso {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `YYYY-MM-DDThh:mm:ssZ`.
    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::isotime(t))
    }

    /// Reads any ISO-8601 form `parse_iso` accepts.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_iso(&s).ok_or_else(|| D::Error::custom(format!("invalid timestamp '{s}'")))
    }
}

/// Serde helpers for an optional timestamp in Glance's format (`null` when absent).
pub mod iso_opt {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `YYYY-MM-DDThh:mm:ssZ` or `null`.
    pub fn serialize<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::isotime(t)),
            None => s.serialize_none(),
        }
    }

    /// Reads an ISO-8601 string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_iso(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("invalid timestamp '{s}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_no_fraction_and_formats_like_glance() {
        let t = now();
        assert_eq!(t.nanosecond(), 0);
        let s = isotime(&t);
        assert_eq!(s.len(), 20);
        assert!(s.ends_with('Z'));
        assert_eq!(parse_iso(&s), Some(t));
    }

    #[test]
    fn parses_the_forms_clients_send() {
        let want =
            NaiveDateTime::parse_from_str("2026-01-02 03:04:05", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(parse_iso("2026-01-02T03:04:05Z"), Some(want));
        assert_eq!(parse_iso("2026-01-02T04:04:05+01:00"), Some(want));
        assert_eq!(parse_iso("2026-01-02T03:04:05"), Some(want));
        assert!(parse_iso("2026-01-02T03:04:05.250Z").is_some());
        assert!(parse_iso("yesterday").is_none());
        assert!(parse_iso("2026-13-02T03:04:05Z").is_none());
    }
}
