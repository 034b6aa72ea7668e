//! The query of one page of an image list, built once per backend: run on the concrete
//! connection, its statement is cached by type instead of having its SQL text rendered again
//! on every call, as Diesel's multi-connection layer does. The query has no LIMIT; callers
//! add it (or stop reading) as suits their backend.
//!
//! The ORDER BY is one flat [`OrderList`]. Diesel's `then_order_by` on a boxed query nests
//! each new key in a pair with everything before it, and walking such a pair first asks each
//! side whether it renders to nothing by walking it in full: the work doubled with every key
//! (`sort=name,name,…` took 8 s at 24 keys and never ended at 40, holding a worker and a
//! pooled connection). The model also refuses a repeated key, so a sort has at most one
//! entry per key; the list keeps the build linear whatever it is given.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};

/// `a ASC, b DESC, …`: the terms of an ORDER BY, rendered one after the other.
pub struct OrderList<DB>(pub Vec<Box<dyn QueryFragment<DB> + Send>>);

impl<DB> QueryId for OrderList<DB> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> QueryFragment<DB> for OrderList<DB> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        for (i, term) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            term.walk_ast(out.reborrow())?;
        }
        Ok(())
    }
}

impl<DB> diesel::expression::Expression for OrderList<DB> {
    type SqlType = diesel::expression::expression_types::NotSelectable;
}

// Every term is built in this module from columns of `images` alone.
impl<DB> diesel::expression::AppearsOnTable<crate::db::schema::images::table> for OrderList<DB> {}

impl<DB, GB> diesel::expression::ValidGrouping<GB> for OrderList<DB> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

macro_rules! page_query {
    ($module:ident, $backend:ty) => {
        /// The page query for this backend.
        pub mod $module {
            use diesel::prelude::*;
            use diesel::sql_types::{Bool, Text};
            use glance_model::filter::{
                ImageFilters, ListQuery, MemberStatusFilter, SortDir, SortKey, TimeFilter, TimeOp,
                ValueMatch, VisibilityFilter,
            };
            use glance_model::{Context, ImageStatus, MemberStatus, Visibility};

            use crate::db::rows::ImageRow;
            use crate::db::schema::{image_members, image_properties, image_tags, images};

            type Db = $backend;
            type BoxedBool = Box<dyn BoxableExpression<images::table, Db, SqlType = Bool>>;

            diesel::define_sql_function! {
                /// SQL `COALESCE(x, y)`: sorts and compares nullable columns the same way on
                /// every backend.
                fn coalesce<T: diesel::sql_types::SqlType + diesel::sql_types::SingleValue>(x: diesel::sql_types::Nullable<T>, y: T) -> T;
            }

            /// Live, non-killed images the caller may see, filtered, after `marker` in the
            /// requested order.
            pub fn query<'a>(
                ctx: &Context,
                q: &ListQuery,
                marker: Option<&ImageRow>,
            ) -> images::BoxedQuery<'a, Db, diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<ImageRow, Db>>> {
                let mut query = images::table
                    .select(ImageRow::as_select())
                    .filter(images::deleted.eq(false))
                    .filter(images::status.ne(ImageStatus::Killed.as_str()))
                    .into_boxed::<Db>();
                if let Some(cond) = visibility_condition(ctx, &q.filters) {
                    query = query.filter(cond);
                }
                query = apply_filters(query, &q.filters);
                if let Some(m) = marker {
                    query = query.filter(after_marker(&q.sort, m));
                }
                let terms = q.sort.iter().map(|(key, dir)| order_term(*key, *dir)).collect();
                query.order(super::OrderList(terms))
            }

            /// Who sees what in a list: the SQL form of `glance_model::visibility::may_see`
            /// (tested against it on every backend, `tests/e2e/registry_visibility.rs`), then
            /// the list's own filters (`member_status`, `visibility`, and Glance's rule that
            /// community images are listed only when asked for).
            fn visibility_condition(ctx: &Context, f: &ImageFilters) -> Option<BoxedBool> {
                let project = ctx.project_id.clone();
                let mut conds: Vec<BoxedBool> = Vec::new();
                if !ctx.is_admin {
                    let mut visible: BoxedBool = Box::new(
                        images::visibility
                            .eq(Visibility::Public.as_str())
                            .or(images::visibility.eq(Visibility::Community.as_str())),
                    );
                    if let Some(p) = project.clone() {
                        let members = image_members::table
                            .select(image_members::image_id)
                            .filter(image_members::member.eq(p.clone()))
                            .filter(image_members::deleted.eq(false));
                        let wanted = match f.member_status {
                            MemberStatusFilter::Pending => Some(MemberStatus::Pending.as_str()),
                            MemberStatusFilter::Accepted => Some(MemberStatus::Accepted.as_str()),
                            MemberStatusFilter::Rejected => Some(MemberStatus::Rejected.as_str()),
                            MemberStatusFilter::All => None,
                        };
                        let shared = images::visibility.eq(Visibility::Shared.as_str());
                        let member_of: BoxedBool = match wanted {
                            Some(s) => Box::new(
                                shared.and(images::id.eq_any(members.filter(image_members::status.eq(s)))),
                            ),
                            None => Box::new(shared.and(images::id.eq_any(members))),
                        };
                        visible = Box::new(
                            visible
                                .or(images::owner.assume_not_null().eq(p))
                                .or(member_of),
                        );
                    }
                    conds.push(visible);
                }
                match f.visibility {
                    Some(VisibilityFilter::All) => {}
                    Some(v) => {
                        let v = match v {
                            VisibilityFilter::Public => Visibility::Public,
                            VisibilityFilter::Private => Visibility::Private,
                            VisibilityFilter::Shared => Visibility::Shared,
                            VisibilityFilter::Community | VisibilityFilter::All => Visibility::Community,
                        };
                        conds.push(Box::new(images::visibility.eq(v.as_str())));
                    }
                    None => match project {
                        // Community images are listed only when asked for, or to their owner.
                        Some(p) => conds.push(Box::new(
                            images::visibility
                                .ne(Visibility::Community.as_str())
                                .or(images::owner.assume_not_null().eq(p)),
                        )),
                        None => conds.push(Box::new(
                            images::visibility.ne(Visibility::Community.as_str()),
                        )),
                    },
                }
                conds.into_iter().reduce(|a, b| Box::new(a.and(b)))
            }

            fn apply_filters<'a>(
                mut q: images::BoxedQuery<'a, Db, diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<ImageRow, Db>>>,
                f: &ImageFilters,
            ) -> images::BoxedQuery<'a, Db, diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<ImageRow, Db>>> {
                macro_rules! value_match {
                    ($field:expr, $col:expr) => {
                        match &$field {
                            Some(ValueMatch::Eq(v)) => q = q.filter($col.eq(v.clone())),
                            Some(ValueMatch::In(vs)) => q = q.filter($col.eq_any(vs.clone())),
                            None => {}
                        }
                    };
                }
                value_match!(f.name, images::name);
                value_match!(f.id, images::id);
                value_match!(f.status, images::status);
                value_match!(f.container_format, images::container_format);
                value_match!(f.disk_format, images::disk_format);
                if let Some(owner) = &f.owner {
                    q = q.filter(images::owner.eq(owner.clone()));
                }
                if let Some(p) = f.protected {
                    q = q.filter(images::protected.eq(p));
                }
                q = q.filter(images::os_hidden.eq(f.os_hidden));
                if let Some(v) = f.size_min {
                    q = q.filter(images::size.ge(v));
                }
                if let Some(v) = f.size_max {
                    q = q.filter(images::size.le(v));
                }
                if let Some(c) = &f.checksum {
                    q = q.filter(images::checksum.eq(c.clone()));
                }
                if let Some(h) = &f.os_hash_value {
                    q = q.filter(images::os_hash_value.eq(h.clone()));
                }
                macro_rules! time_filter {
                    ($filter:expr, $col:expr) => {
                        if let Some(TimeFilter { op, at }) = $filter {
                            q = match op {
                                TimeOp::Gt => q.filter($col.gt(at)),
                                TimeOp::Gte => q.filter($col.ge(at)),
                                TimeOp::Eq => q.filter($col.eq(at)),
                                TimeOp::Neq => q.filter($col.ne(at)),
                                TimeOp::Lt => q.filter($col.lt(at)),
                                TimeOp::Lte => q.filter($col.le(at)),
                            };
                        }
                    };
                }
                time_filter!(f.created_at, images::created_at);
                time_filter!(f.updated_at, images::updated_at);
                // A correlated probe per image, as Glance's own queries: walking the page order and
                // probing each image's (image_id, value) / (image_id, name) index stops after one page
                // of matches, where `id IN (SELECT …)` builds the whole set of matching ids for every
                // page. The probe is a scalar `(SELECT COUNT(*) …) > 0`, which every backend runs as
                // written, not `EXISTS (…)`: MariaDB rewrites a correlated EXISTS into that IN
                // (`exists_to_in`) and then a semi-join driven from the (name, value) index, reading
                // every matching row into a temporary table and sorting it for each page; PostgreSQL
                // plans it as a parallel semi-join whose workers walk ten times the rows a page needs.
                // First page of 25 with `os_distro=cirros` (a tenth of the images), issue 27: MariaDB
                // 20 ms → 3 ms of 10,000 images and 600 ms → 4–12 ms of 200,000; PostgreSQL 72–80 ms
                // → 1.4 ms of 200,000; SQLite plans both forms alike (the same index probe per image).
                for tag in &f.tags {
                    let live = image_tags::table
                        .filter(image_tags::image_id.eq(images::id))
                        .filter(image_tags::value.eq(tag.clone()))
                        .filter(image_tags::deleted.eq(false));
                    q = q.filter(live.count().single_value().assume_not_null().gt(0i64));
                }
                for (k, v) in &f.properties {
                    let live = image_properties::table
                        .filter(image_properties::image_id.eq(images::id))
                        .filter(image_properties::name.eq(k.clone()))
                        .filter(image_properties::value.eq(v.clone()))
                        .filter(image_properties::deleted.eq(false));
                    q = q.filter(live.count().single_value().assume_not_null().gt(0i64));
                }
                q
            }

            #[derive(Clone, Copy)]
            enum Cmp {
                Eq,
                After(SortDir),
                /// Equal or after: `>=` ascending, `<=` descending.
                From(SortDir),
            }

            /// One sort key compared with the marker's value. Nullable keys compare through COALESCE
            /// with Glance's defaults ('' and 0), exactly as they are ordered.
            fn key_condition(key: SortKey, m: &ImageRow, cmp: Cmp) -> BoxedBool {
                macro_rules! compare {
                    ($e:expr, $v:expr) => {
                        match cmp {
                            Cmp::Eq => Box::new($e.eq($v)),
                            Cmp::After(SortDir::Asc) => Box::new($e.gt($v)),
                            Cmp::After(SortDir::Desc) => Box::new($e.lt($v)),
                            Cmp::From(SortDir::Asc) => Box::new($e.ge($v)),
                            Cmp::From(SortDir::Desc) => Box::new($e.le($v)),
                        }
                    };
                }
                match key {
                    SortKey::Name => compare!(
                        coalesce::<Text, _, _>(images::name, ""),
                        m.name.clone().unwrap_or_default()
                    ),
                    SortKey::Status => compare!(images::status, m.status.clone()),
                    SortKey::ContainerFormat => compare!(
                        coalesce::<Text, _, _>(images::container_format, ""),
                        m.container_format.clone().unwrap_or_default()
                    ),
                    SortKey::DiskFormat => compare!(
                        coalesce::<Text, _, _>(images::disk_format, ""),
                        m.disk_format.clone().unwrap_or_default()
                    ),
                    SortKey::Size => compare!(
                        coalesce::<diesel::sql_types::BigInt, _, _>(images::size, 0i64),
                        m.size.unwrap_or(0)
                    ),
                    SortKey::Id => compare!(images::id, m.id.clone()),
                    SortKey::CreatedAt => compare!(images::created_at, m.created_at),
                    SortKey::UpdatedAt => compare!(
                        coalesce::<diesel::sql_types::Timestamp, _, _>(images::updated_at, images::created_at),
                        m.updated_at.unwrap_or(m.created_at)
                    ),
                }
            }

            /// Rows after the marker in the sort order: (k1 > m1) OR (k1 = m1 AND k2 > m2) OR …
            fn after_marker(sort: &[(SortKey, SortDir)], m: &ImageRow) -> BoxedBool {
                let mut alternatives: Vec<BoxedBool> = Vec::new();
                for (i, (key, dir)) in sort.iter().enumerate() {
                    let mut all = key_condition(*key, m, Cmp::After(*dir));
                    for (prev, _) in &sort[..i] {
                        all = Box::new(key_condition(*prev, m, Cmp::Eq).and(all));
                    }
                    alternatives.push(all);
                }
                let after = alternatives
                    .into_iter()
                    .reduce(|a, b| Box::new(a.or(b)))
                    .unwrap_or_else(|| Box::new(diesel::dsl::sql::<Bool>("1 = 1")));
                // The first key's bound alone (k1 >= m1, or <= descending) follows from the
                // alternatives; written out, it is a range the index on that key starts from,
                // where the OR alone is a filter run on every row before the marker's: a page
                // 20,000 images deep on PostgreSQL walked and dropped them all, 24 ms → 0.2 ms
                // (issue 27: the cost of a `next` link grew with its depth).
                match sort.first() {
                    Some((key, dir)) => Box::new(key_condition(*key, m, Cmp::From(*dir)).and(after)),
                    None => after,
                }
            }

            /// One ORDER BY term. Nullable keys sort through COALESCE with Glance's defaults.
            fn order_term(key: SortKey, dir: SortDir) -> Box<dyn diesel::query_builder::QueryFragment<Db> + Send> {
                macro_rules! by {
                    ($e:expr) => {
                        match dir {
                            SortDir::Asc => Box::new($e.asc()),
                            SortDir::Desc => Box::new($e.desc()),
                        }
                    };
                }
                match key {
                    SortKey::Name => by!(coalesce::<Text, _, _>(images::name, "")),
                    SortKey::Status => by!(images::status),
                    SortKey::ContainerFormat => by!(coalesce::<Text, _, _>(images::container_format, "")),
                    SortKey::DiskFormat => by!(coalesce::<Text, _, _>(images::disk_format, "")),
                    SortKey::Size => by!(coalesce::<diesel::sql_types::BigInt, _, _>(
                        images::size,
                        0i64
                    )),
                    SortKey::Id => by!(images::id),
                    SortKey::CreatedAt => by!(images::created_at),
                    SortKey::UpdatedAt => by!(coalesce::<diesel::sql_types::Timestamp, _, _>(
                        images::updated_at,
                        images::created_at
                    )),
                }
            }
        }
    };
}

#[cfg(feature = "mysql")]
page_query!(mysql, diesel::mysql::Mysql);
#[cfg(feature = "postgres")]
page_query!(postgres, diesel::pg::Pg);
#[cfg(feature = "sqlite")]
page_query!(sqlite, diesel::sqlite::Sqlite);

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use glance_model::Context;
    use glance_model::filter::{ListQuery, PageLimits, SortDir, SortKey, parse_query_string};

    /// The ORDER BY is flat and built in time linear in the sort: a sort far longer than the
    /// model allows (10,000 terms; nested pairs never finished at 40) still renders at once,
    /// every term once, in order.
    #[test]
    fn a_long_sort_renders_flat_and_in_order() {
        let pairs = parse_query_string("sort=name:asc,size:desc").expect("query");
        let mut q = ListQuery::parse(&pairs, PageLimits::default()).expect("parse");
        let sql = diesel::debug_query(&super::sqlite::query(
            &Context::project("p", &["member"]),
            &q,
            None,
        ))
        .to_string();
        assert!(
            sql.contains(
                "ORDER BY coalesce(`images`.`name`, ?) ASC, coalesce(`images`.`size`, ?) DESC, \
                 `images`.`created_at` ASC, `images`.`id` ASC"
            ),
            "{sql}"
        );
        let keys = [SortKey::Name, SortKey::Status, SortKey::Id];
        q.sort = (0..10_000)
            .map(|i| (keys[i % keys.len()], SortDir::Asc))
            .collect();
        let sql = diesel::debug_query(&super::sqlite::query(
            &Context::project("p", &["member"]),
            &q,
            None,
        ))
        .to_string();
        let order = sql.split_once(" ORDER BY ").map_or("", |(_, o)| o);
        assert_eq!(order.matches(" ASC").count(), 10_000, "one term per entry");
        assert!(order.starts_with("coalesce(`images`.`name`, ?) ASC, `images`.`status` ASC, `images`.`id` ASC, coalesce("), "{}", &order[..200.min(order.len())]);
    }
}

#[cfg(test)]
mod probe_tests {
    use glance_model::Context;
    use glance_model::filter::{ListQuery, PageLimits, parse_query_string};

    fn query() -> ListQuery {
        let pairs = parse_query_string("os_distro=cirros&tag=a&limit=25").expect("query");
        ListQuery::parse(&pairs, PageLimits::default()).expect("parse")
    }

    /// A tag or property filter is a scalar COUNT per image, never an EXISTS, which MariaDB
    /// and PostgreSQL turn into semi-joins that read far more than a page (issue 27).
    fn assert_probes(sql: &str, quote: char) {
        assert!(!sql.contains("EXISTS"), "{sql}");
        assert_eq!(sql.matches("(SELECT COUNT(*) FROM").count(), 2, "{sql}");
        for table in ["image_properties", "image_tags"] {
            let correlated = format!(
                "{quote}{table}{quote}.{quote}image_id{quote} = {quote}images{quote}.{quote}id{quote}"
            );
            assert!(sql.contains(&correlated), "{correlated} in {sql}");
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_filters_probe_each_image_with_a_count() {
        let sql = diesel::debug_query(&super::sqlite::query(
            &Context::project("p", &["member"]),
            &query(),
            None,
        ))
        .to_string();
        assert_probes(&sql, '`');
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mariadb_filters_probe_each_image_with_a_count() {
        let sql = diesel::debug_query(&super::mysql::query(
            &Context::project("p", &["member"]),
            &query(),
            None,
        ))
        .to_string();
        assert_probes(&sql, '`');
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_filters_probe_each_image_with_a_count() {
        let sql = diesel::debug_query(&super::postgres::query(
            &Context::project("p", &["member"]),
            &query(),
            None,
        ))
        .to_string();
        assert_probes(&sql, '"');
    }
}
