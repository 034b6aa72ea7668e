//! Timestamps: UTC, whole seconds, written as Glance writes them (`YYYY-MM-DDThh:mm:ssZ`).

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

/// The current UTC time truncated to whole seconds. Every timestamp we store goes through
/// this, so all three databases hold the same value (MySQL `DATETIME` has no fraction).
pub fn now() -> NaiveDateTime {
    let t = Utc::now().naive_utc();
    t.with_nanosecond(0).unwrap_or(t)
}

/// Formats a timestamp the way Glance's `isotime` does. Written digit by digit: chrono's
/// `format` parses its pattern on every call, and every image in a list carries two
/// timestamps through two JSON encodings (a few per cent of a list's CPU).
pub fn isotime(t: &NaiveDateTime) -> String {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    let mut out = String::with_capacity(20);
    let mut put = |n: u32, width: u32, sep: char| {
        for i in (0..width).rev() {
            let digit = (n / 10u32.pow(i)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        out.push(sep);
    };
    put(year.unsigned_abs(), 4, '-');
    put(t.month(), 2, '-');
    put(t.day(), 2, 'T');
    put(t.hour(), 2, ':');
    put(t.minute(), 2, ':');
    put(t.second(), 2, 'Z');
    out
}

/// `YYYY-MM-DDThh:mm:ssZ` exactly (what [`isotime`] writes), read digit by digit.
fn parse_isotime(s: &str) -> Option<NaiveDateTime> {
    let core = s.strip_suffix('Z')?;
    if core.len() != 19 || core.as_bytes()[10] != b'T' {
        return None;
    }
    parse_sql_time(core)
}

/// `YYYY-MM-DD hh:mm:ss` (or with `T`), optionally with `.` and 1–9 fraction digits, read
/// digit by digit: how SQL databases spell a timestamp as text (SQLite holds them so).
pub fn parse_sql_time(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            num(frac)? * 10u32.pow(9 - u32::try_from(frac.len()).ok()?)
        }
        _ => return None,
    };
    let year = i32::try_from(num(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, num(&b[5..7])?, num(&b[8..10])?)?.and_hms_nano_opt(
        num(&b[11..13])?,
        num(&b[14..16])?,
        num(&b[17..19])?,
        nanos,
    )
}

/// Parses an ISO-8601 timestamp as clients send it in filters: `2026-01-02T03:04:05Z`,
/// with an offset, with fractional seconds, or without a zone (taken as UTC).
pub fn parse_iso(s: &str) -> Option<NaiveDateTime> {
    if let Some(t) = parse_isotime(s) {
        return Some(t);
    }
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

/// Reads a timestamp string straight from the deserializer's buffer, with no `String` made
/// for it.
struct IsoVisitor;

impl serde::de::Visitor<'_> for IsoVisitor {
    type Value = NaiveDateTime;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an ISO-8601 timestamp")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<NaiveDateTime, E> {
        parse_iso(s).ok_or_else(|| E::custom(format!("invalid timestamp '{s}'")))
    }
}

/// Serde helpers for a required timestamp in Glance's format.
pub mod iso {
    use chrono::NaiveDateTime;
    use serde::{Deserializer, Serializer};

    /// Writes `YYYY-MM-DDThh:mm:ssZ`.
    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::isotime(t))
    }

    /// Reads any ISO-8601 form `parse_iso` accepts.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        d.deserialize_str(super::IsoVisitor)
    }
}

/// Serde helpers for an optional timestamp in Glance's format (`null` when absent).
pub mod iso_opt {
    use chrono::NaiveDateTime;
    use serde::{Deserializer, Serializer};

    /// Writes `YYYY-MM-DDThh:mm:ssZ` or `null`.
    pub fn serialize<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::isotime(t)),
            None => s.serialize_none(),
        }
    }

    struct OptVisitor;

    impl<'de> serde::de::Visitor<'de> for OptVisitor {
        type Value = Option<NaiveDateTime>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an ISO-8601 timestamp or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(super::IsoVisitor).map(Some)
        }
    }

    /// Reads an ISO-8601 string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_time_text_reads_as_chrono_reads_it() {
        for text in [
            "2026-11-27 09:05:01",
            "2026-11-27T09:05:01",
            "2026-11-27 09:05:01.5",
            "2026-11-27 09:05:01.000000",
            "2026-11-27 09:05:01.123456",
            "2026-11-27 09:05:01.123456789",
            "1999-12-31 23:59:59",
            "2024-02-29 00:00:00",
        ] {
            let want = chrono::NaiveDateTime::parse_from_str(
                &text.replace('T', " "),
                "%Y-%m-%d %H:%M:%S%.f",
            )
            .expect("chrono reads it");
            assert_eq!(parse_sql_time(text), Some(want), "{text}");
        }
        for text in [
            "",
            "2026-11-27",
            "2026-11-27 09:05",
            "2026-13-27 09:05:01",
            "2023-02-29 09:05:01",
            "2026-11-27 24:00:00",
            "2026-11-27 09:05:01.",
            "2026-11-27 09:05:01.1234567890",
            "2026-11-27 09:05:01Z",
            "2026-11-27 09:05:01+01:00",
            "2026-1a-27 09:05:01",
            "2460641.5",
        ] {
            assert_eq!(parse_sql_time(text), None, "{text}");
        }
    }

    #[test]
    fn now_has_no_fraction_and_formats_like_glance() {
        let t = now();
        assert_eq!(t.nanosecond(), 0);
        let s = isotime(&t);
        assert_eq!(s.len(), 20);
        assert!(s.ends_with('Z'));
        assert_eq!(parse_iso(&s), Some(t));
    }

    #[derive(serde::Deserialize)]
    struct Times {
        #[serde(with = "iso")]
        at: NaiveDateTime,
        #[serde(with = "iso_opt", default)]
        maybe: Option<NaiveDateTime>,
    }

    #[test]
    fn timestamps_deserialize_from_json() {
        let t: Times =
            serde_json::from_str(r#"{"at": "2026-01-02T03:04:05Z", "maybe": null}"#).unwrap();
        assert_eq!(isotime(&t.at), "2026-01-02T03:04:05Z");
        assert_eq!(t.maybe, None);
        let t: Times = serde_json::from_str(
            r#"{"at": "2026-01-02T03:04:05\u005a", "maybe": "2026-01-02T04:04:05+01:00"}"#,
        )
        .unwrap();
        assert_eq!(Some(t.at), t.maybe, "escaped and offset forms");
        let t: Times = serde_json::from_str(r#"{"at": "2026-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(t.maybe, None, "absent");
        let bad = serde_json::from_str::<Times>(r#"{"at": "yesterday"}"#);
        assert!(bad.is_err_and(|e| e.to_string().contains("invalid timestamp 'yesterday'")));
        assert!(serde_json::from_str::<Times>(r#"{"at": 5}"#).is_err());
    }

    #[test]
    fn isotime_round_trips_and_matches_chrono() {
        for s in [
            "2026-01-02T03:04:05Z",
            "1999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-02-29T12:00:00Z",
        ] {
            let t = parse_iso(s).unwrap();
            assert_eq!(isotime(&t), s);
            assert_eq!(isotime(&t), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        assert_eq!(parse_isotime("2023-02-29T12:00:00Z"), None, "no such day");
        assert_eq!(parse_isotime("2026-01-02T24:00:00Z"), None, "no such hour");
        assert_eq!(parse_isotime("2026-01-0xT03:04:05Z"), None);
        assert_eq!(parse_isotime("+026-01-02T03:04:05Z"), None);
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
