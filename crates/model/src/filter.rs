//! Listing images: filters, sorting and pagination, parsed and validated as Glance does
//! (`GET /v2/images` query parameters). glance-api and glance-registry both parse the same
//! query string with [`ListQuery::parse`], so the rules live only here.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::error::ModelError;
use crate::image::{ImageId, truncate};

/// Default and maximum page sizes (`limit_param_default`, `api_limit_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Page size when `limit` is absent (Glance: 25).
    pub default: u32,
    /// Largest page returned whatever `limit` asks (Glance: 1000).
    pub max: u32,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            default: 25,
            max: 1000,
        }
    }
}

/// Most custom-property filters one list request may carry (Glance's default
/// `image_property_quota`: no image can hold more properties than that). Each filter is one
/// more condition in the list's statement, and SQLite refuses a statement whose expression
/// tree passes 1,000 levels, so the bound keeps every backend answering the same 400.
pub const MAX_PROPERTY_FILTERS: usize = 128;

/// Most `tag` filters one list request may carry (Glance's default `image_tag_quota`).
pub const MAX_TAG_FILTERS: usize = 128;

/// Most values one `in:` list filter may name.
pub const MAX_IN_VALUES: usize = 1000;

/// Keys an image list may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// `name`
    Name,
    /// `status`
    Status,
    /// `container_format`
    ContainerFormat,
    /// `disk_format`
    DiskFormat,
    /// `size`
    Size,
    /// `id`
    Id,
    /// `created_at`
    CreatedAt,
    /// `updated_at`
    UpdatedAt,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// An equality filter, or Glance's `in:a,b,"c,d"` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// `key=value`
    Eq(String),
    /// `key=in:v1,v2` (quoted values may hold commas)
    In(Vec<String>),
}

/// Comparison operators for `created_at` / `updated_at` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    /// `gt:`
    Gt,
    /// `gte:`
    Gte,
    /// `eq:` (also a bare timestamp)
    Eq,
    /// `neq:`
    Neq,
    /// `lt:`
    Lt,
    /// `lte:`
    Lte,
}

/// A `created_at` / `updated_at` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeFilter {
    /// The comparison.
    pub op: TimeOp,
    /// The instant compared with (UTC).
    pub at: NaiveDateTime,
}

/// The `visibility` list filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityFilter {
    /// `public`
    Public,
    /// `private`
    Private,
    /// `shared`
    Shared,
    /// `community`
    Community,
    /// `all`: everything the caller may see.
    All,
}

/// The `member_status` list filter (default `accepted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberStatusFilter {
    /// `pending`
    Pending,
    /// `accepted`
    #[default]
    Accepted,
    /// `rejected`
    Rejected,
    /// `all`
    All,
}

/// Every filter Glance's image list accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFilters {
    /// `name`
    pub name: Option<ValueMatch>,
    /// `id`
    pub id: Option<ValueMatch>,
    /// `status`
    pub status: Option<ValueMatch>,
    /// `container_format`
    pub container_format: Option<ValueMatch>,
    /// `disk_format`
    pub disk_format: Option<ValueMatch>,
    /// `visibility`; `None` is Glance's default (no community images except the caller's own).
    pub visibility: Option<VisibilityFilter>,
    /// `member_status`
    pub member_status: MemberStatusFilter,
    /// `owner`
    pub owner: Option<String>,
    /// `protected`
    pub protected: Option<bool>,
    /// `os_hidden` (default false: hidden images are left out)
    pub os_hidden: bool,
    /// `tag`, repeatable; an image must carry all of them.
    pub tags: Vec<String>,
    /// `size_min`
    pub size_min: Option<i64>,
    /// `size_max`
    pub size_max: Option<i64>,
    /// `created_at`
    pub created_at: Option<TimeFilter>,
    /// `updated_at`
    pub updated_at: Option<TimeFilter>,
    /// `checksum`
    pub checksum: Option<String>,
    /// `os_hash_value`
    pub os_hash_value: Option<String>,
    /// Any other key: exact match on a custom property.
    pub properties: BTreeMap<String, String>,
}

/// A parsed, validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size, already defaulted and capped.
    pub limit: u32,
    /// The page starts after this image.
    pub marker: Option<ImageId>,
    /// Sort keys in order, with Glance's `created_at`, `id` tiebreakers appended.
    pub sort: Vec<(SortKey, SortDir)>,
    /// The filters.
    pub filters: ImageFilters,
}

/// The sort keys Glance accepts, in its order.
pub const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
];

impl SortKey {
    /// The key's query spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Status => "status",
            Self::ContainerFormat => "container_format",
            Self::DiskFormat => "disk_format",
            Self::Size => "size",
            Self::Id => "id",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }

    fn parse(s: &str) -> Result<Self, ModelError> {
        Ok(match s {
            "name" => Self::Name,
            "status" => Self::Status,
            "container_format" => Self::ContainerFormat,
            "disk_format" => Self::DiskFormat,
            "size" => Self::Size,
            "id" => Self::Id,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            other => {
                return Err(ModelError::bad_request(format!(
                    "Invalid sort key: {}. It must be one of: {}",
                    truncate(other, 64),
                    SORT_KEYS.join(", ")
                )));
            }
        })
    }
}

impl SortDir {
    /// The direction's query spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    fn parse(s: &str) -> Result<Self, ModelError> {
        match s {
            "asc" => Ok(Self::Asc),
            "desc" => Ok(Self::Desc),
            other => Err(ModelError::bad_request(format!(
                "Invalid sort direction: {}. Use asc or desc",
                truncate(other, 64)
            ))),
        }
    }
}

/// Splits a query string (`a=b&c=d`; `+` is a space; percent-escapes decoded) into ordered
/// pairs. Invalid UTF-8 after decoding is a 400.
pub fn parse_query_string(qs: &str) -> Result<Vec<(String, String)>, ModelError> {
    let decode = |raw: &str| -> Result<String, ModelError> {
        let spaced = raw.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                ModelError::bad_request(format!(
                    "Query parameter '{}' is not valid UTF-8 once decoded",
                    truncate(raw, 64)
                ))
            })
    };
    qs.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Glance's `split_filter_op`: `op:value`, except that a bare ISO-8601 time containing
/// colons is an `eq` comparison.
fn split_op(expr: &str) -> (&str, &str) {
    match expr.split_once(':') {
        Some(_) if crate::time::parse_iso(expr).is_some() => ("eq", expr),
        Some((op, rest)) => (op, rest),
        None => ("eq", expr),
    }
}

/// Glance's `validate_quotes` + `split_filter_value_for_quotes` for `in:` lists.
fn split_in_list(value: &str) -> Result<Vec<String>, ModelError> {
    let chars: Vec<char> = value.chars().collect();
    let bad = |why: &str| {
        ModelError::bad_request(format!(
            "Invalid filter value {}: {why}",
            truncate(value, 128)
        ))
    };
    let mut open = false;
    for i in 0..chars.len() {
        if chars[i] != '"' || (i > 0 && chars[i - 1] == '\\') {
            continue;
        }
        if !open && i > 0 && chars[i - 1] != ',' {
            return Err(bad("there is no comma before the opening quotation mark"));
        }
        if open && i + 1 != chars.len() && chars[i + 1] != ',' {
            return Err(bad("there is no comma after the closing quotation mark"));
        }
        open = !open;
    }
    if open {
        return Err(bad("the quotation mark is not closed"));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            let mut cur = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    cur.push(chars[i]);
                    i += 1;
                }
                cur.push(chars[i]);
                i += 1;
            }
            out.push(cur);
            i += 1;
            if i < chars.len() && chars[i] == ',' {
                i += 1;
            }
        } else if chars[i] == ',' {
            out.push(String::new());
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ',' {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
            if i < chars.len() {
                i += 1;
            }
        }
    }
    Ok(out)
}

fn value_match(key: &str, raw: &str) -> Result<ValueMatch, ModelError> {
    match split_op(raw) {
        ("in", list) => {
            let values = split_in_list(list)?;
            if values.len() > MAX_IN_VALUES {
                return Err(ModelError::bad_request(format!(
                    "The {key} filter names {} values: at most {MAX_IN_VALUES} are allowed in one in: list",
                    values.len()
                )));
            }
            Ok(ValueMatch::In(values))
        }
        ("eq", v) => Ok(ValueMatch::Eq(v.to_string())),
        (op, _) => Err(ModelError::bad_request(format!(
            "Unable to filter {key} by unknown operator '{}': use a plain value or in:a,b",
            truncate(op, 32)
        ))),
    }
}

fn time_filter(key: &str, raw: &str) -> Result<TimeFilter, ModelError> {
    let (op, time) = split_op(raw);
    let op = match op {
        "gt" => TimeOp::Gt,
        "gte" => TimeOp::Gte,
        "eq" => TimeOp::Eq,
        "neq" => TimeOp::Neq,
        "lt" => TimeOp::Lt,
        "lte" => TimeOp::Lte,
        other => {
            return Err(ModelError::bad_request(format!(
                "Unable to filter {key} by unknown operator '{}': use gt, gte, eq, neq, lt or lte",
                truncate(other, 32)
            )));
        }
    };
    let at = crate::time::parse_iso(time).ok_or_else(|| {
        ModelError::bad_request(format!(
            "Bad \"{key}\" query filter '{}': use ISO 8601 date-time notation, e.g. 2026-01-31T12:00:00Z",
            truncate(time, 64)
        ))
    })?;
    Ok(TimeFilter { op, at })
}

fn bool_filter(key: &str, raw: &str) -> Result<bool, ModelError> {
    match raw.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ModelError::bad_request(format!(
            "Invalid value '{}' for '{key}' filter: valid values are 'true' or 'false'",
            truncate(raw, 64)
        ))),
    }
}

fn int_filter(key: &str, raw: &str) -> Result<i64, ModelError> {
    raw.trim().parse::<i64>().map_err(|_| {
        ModelError::bad_request(format!(
            "Unable to filter {key} on a range with a non-numeric value '{}'",
            truncate(raw, 64)
        ))
    })
}

impl ListQuery {
    /// Parses the query parameters of `GET /v2/images` (in order, repeated keys kept)
    /// exactly as Glance does: `limit`, `marker` and `member_status` take their first
    /// occurrence, `tag`, `sort_key` and `sort_dir` repeat, other filters take their last.
    pub fn parse(pairs: &[(String, String)], limits: PageLimits) -> Result<ListQuery, ModelError> {
        let first = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let all = |k: &str| -> Vec<&str> {
            pairs
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let limit = match first("limit") {
            None => limits.default,
            Some(raw) => {
                let n: i64 = raw.trim().parse().map_err(|_| {
                    ModelError::bad_request(format!(
                        "limit param must be an integer, got '{}'",
                        truncate(raw, 32)
                    ))
                })?;
                if n < 0 {
                    return Err(ModelError::bad_request(format!(
                        "limit param must be positive, got {n}"
                    )));
                }
                u32::try_from(n).unwrap_or(u32::MAX).min(limits.max)
            }
        };
        let marker = match first("marker") {
            None => None,
            Some(raw) => Some(raw.parse::<ImageId>().map_err(|_| {
                ModelError::bad_request(format!(
                    "Invalid marker '{}': not an image id",
                    truncate(raw, 64)
                ))
            })?),
        };
        let member_status = match first("member_status").unwrap_or("accepted") {
            "pending" => MemberStatusFilter::Pending,
            "accepted" => MemberStatusFilter::Accepted,
            "rejected" => MemberStatusFilter::Rejected,
            "all" => MemberStatusFilter::All,
            other => {
                return Err(ModelError::bad_request(format!(
                    "Invalid member_status: {}. Use pending, accepted, rejected or all",
                    truncate(other, 32)
                )));
            }
        };
        let sort = Self::parse_sort(pairs)?;
        let tags = all("tag");
        if tags.len() > MAX_TAG_FILTERS {
            return Err(ModelError::bad_request(format!(
                "Too many tag filters: {}, at most {MAX_TAG_FILTERS} are allowed",
                tags.len()
            )));
        }
        let mut f = ImageFilters {
            member_status,
            tags: tags.into_iter().map(|t| t.trim().to_string()).collect(),
            ..ImageFilters::default()
        };
        // Other filters: the last occurrence wins, as with webob's MultiDict.get.
        let mut last: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in pairs {
            last.insert(k.as_str(), v.as_str());
        }
        for (key, raw) in last {
            match key {
                "limit" | "marker" | "member_status" | "tag" | "sort" | "sort_key" | "sort_dir" => {
                }
                "changes-since" => {
                    return Err(ModelError::bad_request(
                        "The \"changes-since\" filter is no longer available on v2; use updated_at=gt:<time>",
                    ));
                }
                "visibility" => {
                    f.visibility = match raw {
                        "" => None,
                        "public" => Some(VisibilityFilter::Public),
                        "private" => Some(VisibilityFilter::Private),
                        "shared" => Some(VisibilityFilter::Shared),
                        "community" => Some(VisibilityFilter::Community),
                        "all" => Some(VisibilityFilter::All),
                        other => {
                            return Err(ModelError::bad_request(format!(
                                "Invalid visibility value: {}. Use public, private, shared, community or all",
                                truncate(other, 32)
                            )));
                        }
                    }
                }
                "name" => f.name = Some(value_match(key, raw)?),
                "id" => f.id = Some(value_match(key, raw)?),
                "status" => f.status = Some(value_match(key, raw)?),
                "container_format" => f.container_format = Some(value_match(key, raw)?),
                "disk_format" => f.disk_format = Some(value_match(key, raw)?),
                "owner" => f.owner = Some(raw.to_string()),
                "protected" => f.protected = Some(bool_filter(key, raw)?),
                "os_hidden" => f.os_hidden = bool_filter(key, raw)?,
                "size_min" => f.size_min = Some(int_filter(key, raw)?),
                "size_max" => f.size_max = Some(int_filter(key, raw)?),
                "created_at" => f.created_at = Some(time_filter(key, raw)?),
                "updated_at" => f.updated_at = Some(time_filter(key, raw)?),
                "checksum" => f.checksum = Some(raw.to_string()),
                "os_hash_value" => f.os_hash_value = Some(raw.to_string()),
                prop => {
                    if prop.chars().count() > crate::image::MAX_STRING_LEN {
                        return Err(ModelError::bad_request(format!(
                            "Property filter name is too long: at most {} characters",
                            crate::image::MAX_STRING_LEN
                        )));
                    }
                    if f.properties.len() == MAX_PROPERTY_FILTERS {
                        return Err(ModelError::bad_request(format!(
                            "Too many property filters: at most {MAX_PROPERTY_FILTERS} custom properties may be filtered on in one request"
                        )));
                    }
                    f.properties.insert(prop.to_string(), raw.to_string());
                }
            }
        }
        Ok(ListQuery {
            limit,
            marker,
            sort,
            filters: f,
        })
    }

    /// Both sort syntaxes; the default is `created_at desc`; `created_at` and `id` are
    /// appended (in the first direction given, else desc) when absent, as Glance's DB layer does.
    /// A key given twice is a 400, as in Glance, so a sort has at most one entry per
    /// [`SortKey`] and the work here and in the query built from it is linear in the input:
    /// parsing stops at the first repeated key.
    fn parse_sort(pairs: &[(String, String)]) -> Result<Vec<(SortKey, SortDir)>, ModelError> {
        let has = |k: &str| pairs.iter().any(|(key, _)| key == k);
        let mut keys = SortKeys::default();
        let mut dirs = Vec::new();
        if has("sort") {
            if has("sort_key") || has("sort_dir") {
                return Err(ModelError::bad_request(
                    "Old and new sorting syntax cannot be combined: use either sort=k:dir,... or sort_key/sort_dir",
                ));
            }
            let raw = pairs
                .iter()
                .find(|(k, _)| k == "sort")
                .map_or("", |(_, v)| v.as_str());
            for item in raw.trim().split(',') {
                let (k, d) = item.split_once(':').unwrap_or((item, ""));
                keys.push(SortKey::parse(k.trim())?)?;
                dirs.push(if d.trim().is_empty() {
                    SortDir::Desc
                } else {
                    SortDir::parse(d.trim())?
                });
            }
        } else {
            for (k, v) in pairs {
                match k.as_str() {
                    "sort_key" => keys.push(SortKey::parse(v.trim())?)?,
                    "sort_dir" => {
                        // More directions than there are keys can never match them.
                        if dirs.len() == SORT_KEYS.len() {
                            return Err(ModelError::bad_request(format!(
                                "Too many sort directions: at most {} (one per sort key)",
                                SORT_KEYS.len()
                            )));
                        }
                        dirs.push(SortDir::parse(v.trim())?);
                    }
                    _ => {}
                }
            }
            if dirs.len() > 1 && dirs.len() != keys.0.len() {
                return Err(ModelError::bad_request(format!(
                    "Number of sort dirs ({}) does not match the number of sort keys ({})",
                    dirs.len(),
                    keys.0.len()
                )));
            }
        }
        let mut keys = keys.0;
        if keys.is_empty() {
            keys.push(SortKey::CreatedAt);
        }
        let default_dir = dirs.first().copied().unwrap_or(SortDir::Desc);
        let mut sort: Vec<(SortKey, SortDir)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, if dirs.len() > 1 { dirs[i] } else { default_dir }))
            .collect();
        for tiebreak in [SortKey::CreatedAt, SortKey::Id] {
            if !sort.iter().any(|(k, _)| *k == tiebreak) {
                sort.push((tiebreak, default_dir));
            }
        }
        Ok(sort)
    }
}

/// The sort keys of one request, each at most once (so never more than [`SORT_KEYS`] holds).
#[derive(Default)]
struct SortKeys(Vec<SortKey>);

impl SortKeys {
    /// Adds `key`; a key already given is a 400.
    fn push(&mut self, key: SortKey) -> Result<(), ModelError> {
        if self.0.contains(&key) {
            return Err(ModelError::bad_request(format!(
                "Sort key '{}' is given more than once: each key may appear once in a sort",
                key.as_str()
            )));
        }
        self.0.push(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn q(qs: &str) -> Result<ListQuery, ModelError> {
        ListQuery::parse(&parse_query_string(qs)?, PageLimits::default())
    }

    fn err(qs: &str) -> String {
        let e = q(qs).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{qs}");
        e.message().to_string()
    }

    #[test]
    fn defaults() {
        let l = q("").unwrap();
        assert_eq!(l.limit, 25);
        assert_eq!(l.marker, None);
        assert_eq!(
            l.sort,
            vec![
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc)
            ]
        );
        assert_eq!(l.filters.member_status, MemberStatusFilter::Accepted);
        assert!(!l.filters.os_hidden);
        assert_eq!(l.filters.visibility, None);
    }

    #[test]
    fn limit_rules() {
        assert_eq!(q("limit=0").unwrap().limit, 0);
        assert_eq!(q("limit=7").unwrap().limit, 7);
        assert_eq!(q("limit=5000").unwrap().limit, 1000, "capped, not refused");
        assert_eq!(q("limit=99999999999999").unwrap().limit, 1000);
        assert!(err("limit=-1").contains("positive"));
        assert!(err("limit=ten").contains("integer"));
        assert_eq!(q("limit=3&limit=9").unwrap().limit, 3, "first occurrence");
        let custom = ListQuery::parse(
            &[],
            PageLimits {
                default: 10,
                max: 20,
            },
        )
        .unwrap();
        assert_eq!(custom.limit, 10);
    }

    #[test]
    fn marker_must_be_an_image_id() {
        let id = "6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86";
        assert_eq!(
            q(&format!("marker={id}"))
                .unwrap()
                .marker
                .unwrap()
                .to_string(),
            id
        );
        assert!(err("marker=bogus").contains("marker"));
    }

    #[test]
    fn new_sort_syntax() {
        let l = q("sort=name:asc,size").unwrap();
        assert_eq!(
            l.sort,
            vec![
                (SortKey::Name, SortDir::Asc),
                (SortKey::Size, SortDir::Desc),
                (SortKey::CreatedAt, SortDir::Asc),
                (SortKey::Id, SortDir::Asc)
            ]
        );
        assert!(err("sort=colour:asc").contains("colour"));
        assert!(err("sort=name:sideways").contains("sideways"));
        assert!(err("sort=name&sort_key=size").contains("cannot be combined"));
        assert!(err("sort=name&sort_dir=asc").contains("cannot be combined"));
    }

    #[test]
    fn classic_sort_syntax() {
        let l = q("sort_key=name&sort_key=size&sort_dir=asc").unwrap();
        assert_eq!(
            l.sort[..2],
            [(SortKey::Name, SortDir::Asc), (SortKey::Size, SortDir::Asc)],
            "one dir applies to all"
        );
        let l = q("sort_key=name&sort_dir=asc&sort_key=size&sort_dir=desc").unwrap();
        assert_eq!(
            l.sort[..2],
            [
                (SortKey::Name, SortDir::Asc),
                (SortKey::Size, SortDir::Desc)
            ]
        );
        assert!(
            err("sort_key=name&sort_dir=asc&sort_dir=desc&sort_dir=asc&sort_key=id")
                .contains("does not match")
        );
        assert!(err("sort_key=owner").contains("owner"));
        assert!(err("sort_dir=up").contains("up"));
        let l = q("sort_key=id&sort_key=created_at").unwrap();
        assert_eq!(l.sort.len(), 2, "tiebreakers not duplicated");
    }

    /// A repeated key is a 400 in both syntaxes, found at once however many keys follow; so
    /// a sort never holds more entries than there are keys.
    #[test]
    fn repeated_sort_keys_are_refused_and_the_count_is_bounded() {
        assert!(err("sort=name,name").contains("more than once"));
        assert!(err("sort=name:asc,size,name:desc").contains("'name'"));
        assert!(err("sort_key=size&sort_key=size").contains("more than once"));
        let many = vec!["name"; 100_000].join(",");
        assert!(err(&format!("sort={many}")).contains("more than once"));
        let many = vec!["sort_key=id"; 100_000].join("&");
        assert!(err(&many).contains("more than once"));
        let many = vec!["sort_dir=asc"; 1000].join("&");
        assert!(err(&many).contains("Too many sort directions"));
        let all = SORT_KEYS.join(",");
        assert_eq!(
            q(&format!("sort={all}")).unwrap().sort.len(),
            SORT_KEYS.len()
        );
        // Tiebreakers a caller named are not appended again.
        let l = q("sort=created_at:asc,id:asc").unwrap();
        assert_eq!(l.sort.len(), 2);
    }

    #[test]
    fn filter_counts_are_bounded() {
        let props = |n: usize| {
            (0..n)
                .map(|i| format!("p{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(
            q(&props(MAX_PROPERTY_FILTERS))
                .unwrap()
                .filters
                .properties
                .len(),
            MAX_PROPERTY_FILTERS
        );
        assert!(err(&props(MAX_PROPERTY_FILTERS + 1)).contains("Too many property filters"));
        assert!(err(&props(100_000)).contains("Too many property filters"));
        let tags = |n: usize| vec!["tag=t"; n].join("&");
        assert!(q(&tags(MAX_TAG_FILTERS)).is_ok());
        assert!(err(&tags(MAX_TAG_FILTERS + 1)).contains("Too many tag filters"));
        let values = |n: usize| format!("name=in:{}", vec!["a"; n].join(","));
        assert!(q(&values(MAX_IN_VALUES)).is_ok());
        assert!(err(&values(MAX_IN_VALUES + 1)).contains("at most"));
    }

    #[test]
    fn in_lists_with_quotes() {
        let l = q("name=in:a,%22b,c%22,d").unwrap();
        assert_eq!(
            l.filters.name,
            Some(ValueMatch::In(vec!["a".into(), "b,c".into(), "d".into()]))
        );
        assert_eq!(
            q("disk_format=qcow2").unwrap().filters.disk_format,
            Some(ValueMatch::Eq("qcow2".into()))
        );
        assert_eq!(
            q("status=in:active,queued").unwrap().filters.status,
            Some(ValueMatch::In(vec!["active".into(), "queued".into()]))
        );
        assert!(err("name=in:a%22b%22").contains("no comma before"));
        assert!(err("name=in:%22a%22b").contains("no comma after"));
        assert!(err("name=in:%22a").contains("not closed"));
        assert!(err("name=like:a").contains("unknown operator"));
        assert_eq!(
            q("id=eq:x").unwrap().filters.id,
            Some(ValueMatch::Eq("x".into()))
        );
    }

    #[test]
    fn time_operators() {
        for (op, want) in [
            ("gt", TimeOp::Gt),
            ("gte", TimeOp::Gte),
            ("eq", TimeOp::Eq),
            ("neq", TimeOp::Neq),
            ("lt", TimeOp::Lt),
            ("lte", TimeOp::Lte),
        ] {
            let l = q(&format!("created_at={op}:2026-01-02T03:04:05Z")).unwrap();
            assert_eq!(l.filters.created_at.unwrap().op, want);
        }
        let bare = q("updated_at=2026-01-02T03:04:05Z").unwrap();
        assert_eq!(
            bare.filters.updated_at.unwrap().op,
            TimeOp::Eq,
            "a bare time is eq"
        );
        assert!(err("created_at=soon:2026-01-02T03:04:05Z").contains("soon"));
        assert!(err("created_at=gt:yesterday").contains("ISO 8601"));
    }

    #[test]
    fn enumerated_and_boolean_filters() {
        assert_eq!(
            q("visibility=all").unwrap().filters.visibility,
            Some(VisibilityFilter::All)
        );
        assert_eq!(
            q("visibility=community").unwrap().filters.visibility,
            Some(VisibilityFilter::Community)
        );
        assert!(err("visibility=everyone").contains("visibility"));
        assert_eq!(
            q("member_status=all").unwrap().filters.member_status,
            MemberStatusFilter::All
        );
        assert!(err("member_status=maybe").contains("member_status"));
        assert_eq!(q("protected=true").unwrap().filters.protected, Some(true));
        assert_eq!(q("protected=FALSE").unwrap().filters.protected, Some(false));
        assert!(err("protected=yes").contains("protected"));
        assert!(q("os_hidden=true").unwrap().filters.os_hidden);
        assert!(err("os_hidden=1").contains("os_hidden"));
    }

    #[test]
    fn ranges_tags_properties_and_removed_filters() {
        let l = q("size_min=10&size_max=20&tag=a&tag=b&os_distro=ubuntu&owner=p&checksum=c&os_hash_value=h").unwrap();
        assert_eq!(
            (l.filters.size_min, l.filters.size_max),
            (Some(10), Some(20))
        );
        assert_eq!(l.filters.tags, vec!["a", "b"]);
        assert_eq!(
            l.filters.properties.get("os_distro").map(String::as_str),
            Some("ubuntu")
        );
        assert_eq!(l.filters.owner.as_deref(), Some("p"));
        assert_eq!(l.filters.checksum.as_deref(), Some("c"));
        assert_eq!(l.filters.os_hash_value.as_deref(), Some("h"));
        assert!(err("size_min=big").contains("non-numeric"));
        assert!(err("changes-since=2020-01-01").contains("no longer available"));
        assert!(err(&format!("{}=v", "k".repeat(256))).contains("too long"));
        assert_eq!(
            q("os_distro=a&os_distro=b").unwrap().filters.properties["os_distro"],
            "b",
            "last wins"
        );
    }

    #[test]
    fn query_string_decoding() {
        let p = parse_query_string("a=b%20c&d=e+f&g=%2C&h&&i=").unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "b c".into()),
                ("d".into(), "e f".into()),
                ("g".into(), ",".into()),
                ("h".into(), "".into()),
                ("i".into(), "".into())
            ]
        );
        assert!(parse_query_string("a=%ff").is_err());
        assert_eq!(
            parse_query_string("a=%zz").unwrap()[0].1,
            "%zz",
            "stray percent kept"
        );
    }
}
