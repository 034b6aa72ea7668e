//! The hand-made query nodes: statements and conditions whose SQL text Diesel would not
//! keep prepared (an `IN` list, constants, a flat `UNION ALL`, fixed `UPDATE`s). Each says
//! why it exists; none opens a connection or runs a statement itself.

/// Most ids one [`any_of!`] condition names; a longer list is queried in chunks of this size.
pub const ANY_OF_CHUNK: usize = 64;

/// The ids of one [`any_of!`] condition, padded with copies of the last id to the next power
/// of two, so that a handful of SQL texts serve every list length.
pub fn padded(ids: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = ids.iter().map(String::as_str).collect();
    if let Some(last) = out.last().copied() {
        out.resize(out.len().next_power_of_two(), last);
    }
    out
}

/// `column IN (?, ?, …)` over [`padded`] ids, boxed for `table` on backend `$backend`.
/// Diesel's own `eq_any` with a list marks its query as never to be kept prepared (its SQL
/// changes with the list's length), so the query is parsed and planned again on every call;
/// [`InList`] has a fixed SQL text per padded length, so these are kept. An `IN` list (not
/// `= ? OR = ?`) lets SQLite answer from a covering index alone. At most [`ANY_OF_CHUNK`] ids.
macro_rules! any_of {
    ($backend:ty, $table:ident, $column:expr, $ids:expr) => {{
        let ids = $crate::db::padded($ids);
        debug_assert!(!ids.is_empty() && ids.len() <= $crate::db::ANY_OF_CHUNK);
        let cond: Box<
            dyn diesel::BoxableExpression<
                    $table::table,
                    $backend,
                    SqlType = diesel::sql_types::Bool,
                >,
        > = Box::new($crate::db::InList::new(
            $column,
            ids.into_iter().map(str::to_string).collect(),
        ));
        cond
    }};
}
pub(crate) use any_of;

/// `column IN (?, …)` with one bind per value; see [`any_of!`]. An empty list is `1 = 0`.
#[derive(Debug, Clone)]
pub struct InList<C> {
    column: C,
    values: Vec<String>,
}

impl<C> InList<C> {
    /// The condition `column IN (values)`.
    pub fn new(column: C, values: Vec<String>) -> Self {
        Self { column, values }
    }
}

impl<C> diesel::expression::Expression for InList<C>
where
    C: diesel::expression::Expression<SqlType = diesel::sql_types::Text>,
{
    type SqlType = diesel::sql_types::Bool;
}

impl<C, QS> diesel::expression::AppearsOnTable<QS> for InList<C>
where
    C: diesel::expression::AppearsOnTable<QS>,
    Self: diesel::expression::Expression,
{
}

impl<C, QS> diesel::expression::SelectableExpression<QS> for InList<C>
where
    C: diesel::expression::SelectableExpression<QS>,
    Self: diesel::expression::AppearsOnTable<QS>,
{
}

impl<C, GB> diesel::expression::ValidGrouping<GB> for InList<C>
where
    C: diesel::expression::ValidGrouping<GB>,
{
    type IsAggregate = C::IsAggregate;
}

impl<C> diesel::query_builder::QueryId for InList<C> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C, DB> diesel::query_builder::QueryFragment<DB> for InList<C>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    C: diesel::query_builder::QueryFragment<DB>,
    String: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        if self.values.is_empty() {
            out.push_sql("1 = 0");
            return Ok(());
        }
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (");
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<diesel::sql_types::Text, _>(v)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

/// A constant in a statement's SQL text, of SQL type `ST`: the integer `N`, or NULL when
/// `ST` is nullable text ([`NullText`]). Diesel's `sql()` literal marks its statement as never
/// to be kept prepared (its text could change); these have a fixed text, so it is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntConst<const N: i32>;

/// A NULL of type `Nullable<Text>` in a statement's SQL text; see [`IntConst`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NullText;

macro_rules! sql_const {
    ($ty:ty, [$($generics:tt)*], $sql_type:ty, |$this:ident| $text:expr) => {
        impl<$($generics)*> diesel::expression::Expression for $ty {
            type SqlType = $sql_type;
        }
        impl<$($generics)* QS> diesel::expression::AppearsOnTable<QS> for $ty {}
        impl<$($generics)* QS> diesel::expression::SelectableExpression<QS> for $ty {}
        impl<$($generics)* GB> diesel::expression::ValidGrouping<GB> for $ty {
            type IsAggregate = diesel::expression::is_aggregate::Never;
        }
        impl<$($generics)*> diesel::query_builder::QueryId for $ty {
            type QueryId = Self;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl<$($generics)* DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB>
            for $ty
        {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
            ) -> diesel::QueryResult<()> {
                let $this = self;
                out.push_sql(&$text);
                Ok(())
            }
        }
    };
}

sql_const!(IntConst<N>, [const N: i32,], diesel::sql_types::Integer, |_this| N.to_string());
sql_const!(
    NullText,
    [],
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
    |_this| "NULL"
);

/// `a UNION ALL b`, written flat, and so `UnionAll(a, UnionAll(b, c))` is
/// `a UNION ALL b UNION ALL c`. Diesel's own `union_all` puts each side in parentheses,
/// `((a) UNION ALL (b)) UNION ALL (c)`, which MariaDB answers by materialising the inner
/// union in a temporary table, on disk when a column is TEXT: a show's children took six
/// times as long as the three statements alone.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
pub struct UnionAll<A, B>(pub A, pub B);

impl<A, B> diesel::query_builder::Query for UnionAll<A, B>
where
    A: diesel::query_builder::Query,
    B: diesel::query_builder::Query<SqlType = A::SqlType>,
{
    type SqlType = A::SqlType;
}

impl<A, B, DB> diesel::query_builder::QueryFragment<DB> for UnionAll<A, B>
where
    DB: diesel::backend::Backend,
    A: diesel::query_builder::QueryFragment<DB>,
    B: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(" UNION ALL ");
        self.1.walk_ast(out.reborrow())
    }
}

impl<A, B, Conn> diesel::RunQueryDsl<Conn> for UnionAll<A, B> {}

/// One value in a [`FixedUpdate`]: a bound text, flag or time, or another column.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    /// A bound text.
    Text(&'a str),
    /// A bound flag.
    Bool(bool),
    /// A bound timestamp.
    Time(chrono::NaiveDateTime),
    /// The named column of the same row.
    Column(&'static str),
    /// A bound integer.
    Int(i32),
    /// The named column of the same row plus one.
    Incremented(&'static str),
    /// A bound 64-bit integer.
    BigInt(i64),
}

/// `UPDATE table SET c = v, … WHERE c = v AND …`, kept prepared. Diesel prepares every
/// UPDATE afresh on each call and closes it after (on MariaDB a `Prepare` round trip and a
/// `Close` per statement; a soft delete was six of them), because one of its Rust types can
/// give different SQL (a changeset that skips `None` fields), and it cannot be told
/// otherwise. This statement's text depends only on its table and column names, so it is
/// kept under that text (no static query id).
#[derive(Debug, Clone)]
pub struct FixedUpdate<'a> {
    /// The table.
    pub table: &'static str,
    /// `SET` assignments.
    pub set: &'a [(&'static str, Val<'a>)],
    /// `WHERE` equalities, joined by `AND`.
    pub filter: &'a [(&'static str, Val<'a>)],
}

impl diesel::query_builder::QueryId for FixedUpdate<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<'a> FixedUpdate<'a> {
    /// The `SET` assignments, then the `WHERE` equalities, each after its separator.
    fn pairs(&self) -> impl Iterator<Item = (&'static str, &(&'static str, Val<'a>))> + '_ {
        let set = self.set.iter().enumerate();
        let filter = self.filter.iter().enumerate();
        set.map(|(i, p)| (if i == 0 { " SET " } else { ", " }, p))
            .chain(filter.map(|(i, p)| (if i == 0 { " WHERE " } else { " AND " }, p)))
    }
}

/// A column, written `table`.`column` when `table` is given (a statement over two tables).
fn push_column<DB: diesel::backend::Backend>(
    out: &mut diesel::query_builder::AstPass<'_, '_, DB>,
    table: Option<&str>,
    column: &str,
) -> diesel::QueryResult<()> {
    if let Some(t) = table {
        out.push_identifier(t)?;
        out.push_sql(".");
    }
    out.push_identifier(column)
}

/// `column = value` after its separator, for each pair; a column a value names is of the
/// same table.
fn push_pairs<'b, 'a: 'b, DB>(
    out: &mut diesel::query_builder::AstPass<'_, 'b, DB>,
    table: Option<&'static str>,
    pairs: impl Iterator<Item = (&'static str, &'b (&'static str, Val<'a>))>,
) -> diesel::QueryResult<()>
where
    DB: diesel::backend::Backend,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Bool>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Integer>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    bool: diesel::serialize::ToSql<diesel::sql_types::Bool, DB>,
    chrono::NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    for (separator, (column, value)) in pairs {
        out.push_sql(separator);
        push_column(out, table, column)?;
        out.push_sql(" = ");
        match value {
            Val::Text(v) => out.push_bind_param::<diesel::sql_types::Text, str>(v)?,
            Val::Bool(v) => out.push_bind_param::<diesel::sql_types::Bool, bool>(v)?,
            Val::Time(v) => out.push_bind_param::<diesel::sql_types::Timestamp, _>(v)?,
            Val::Column(c) => push_column(out, table, c)?,
            Val::Int(v) => out.push_bind_param::<diesel::sql_types::Integer, i32>(v)?,
            Val::Incremented(c) => {
                push_column(out, table, c)?;
                out.push_sql(" + 1");
            }
            Val::BigInt(v) => out.push_bind_param::<diesel::sql_types::BigInt, i64>(v)?,
        }
    }
    Ok(())
}

impl<DB> diesel::query_builder::QueryFragment<DB> for FixedUpdate<'_>
where
    DB: diesel::backend::Backend,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Bool>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Integer>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    bool: diesel::serialize::ToSql<diesel::sql_types::Bool, DB>,
    chrono::NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        push_pairs(&mut out, None, self.pairs())
    }
}

/// Two [`FixedUpdate`]s as one MariaDB/MySQL multi-table `UPDATE a, b SET a.… , b.…
/// WHERE a.… AND b.…`: both rows change, atomically, or (when either filter matches no
/// row) neither does. Kept prepared under its text, as a `FixedUpdate` is.
#[cfg(feature = "mysql")]
#[derive(Debug, Clone)]
pub struct JoinedUpdate<'a>(pub FixedUpdate<'a>, pub FixedUpdate<'a>);

#[cfg(feature = "mysql")]
impl diesel::query_builder::QueryId for JoinedUpdate<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(feature = "mysql")]
impl<Conn> diesel::RunQueryDsl<Conn> for JoinedUpdate<'_> {}

#[cfg(feature = "mysql")]
impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for JoinedUpdate<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> diesel::QueryResult<()> {
        let (a, b) = (&self.0, &self.1);
        out.push_sql("UPDATE ");
        out.push_identifier(a.table)?;
        out.push_sql(", ");
        out.push_identifier(b.table)?;
        let sets = a.set.iter().map(|p| (a.table, p));
        let sets = sets.chain(b.set.iter().map(|p| (b.table, p)));
        let filters = a.filter.iter().map(|p| (a.table, p));
        let filters = filters.chain(b.filter.iter().map(|p| (b.table, p)));
        for (i, (table, pair)) in sets.enumerate() {
            let separator = if i == 0 { " SET " } else { ", " };
            push_pairs(&mut out, Some(table), std::iter::once((separator, pair)))?;
        }
        for (i, (table, pair)) in filters.enumerate() {
            let separator = if i == 0 { " WHERE " } else { " AND " };
            push_pairs(&mut out, Some(table), std::iter::once((separator, pair)))?;
        }
        Ok(())
    }
}

impl<Conn> diesel::RunQueryDsl<Conn> for FixedUpdate<'_> {}

#[cfg(all(test, feature = "mysql"))]
mod tests {
    use diesel::prelude::*;

    /// The children statement must reach the server as one flat `UNION ALL` whose markers
    /// are SQL text: parenthesised sides made MariaDB build a temporary table on disk for
    /// every show, and a bound or `sql()` marker kept the statement from staying prepared.
    #[cfg(feature = "mysql")]
    #[test]
    fn nested_union_all_is_flat_and_kept_prepared() {
        use diesel::query_builder::QueryFragment;

        use super::{IntConst, NullText, UnionAll};
        use crate::db::schema::images;
        let side = |marker| {
            images::table
                .select((marker, images::id, NullText))
                .filter(images::deleted.eq(false))
        };
        let q = UnionAll(
            side(IntConst::<0>),
            UnionAll(
                images::table
                    .select((IntConst::<1>, images::id, NullText))
                    .filter(images::deleted.eq(false)),
                side(IntConst::<0>),
            ),
        );
        let sql = diesel::debug_query::<diesel::mysql::Mysql, _>(&q).to_string();
        assert!(
            sql.starts_with("SELECT 0, `images`.`id`, NULL FROM `images` WHERE")
                && sql.contains(" UNION ALL SELECT 1, `images`.`id`, NULL FROM")
                && !sql.contains("(SELECT"),
            "{sql}"
        );
        assert!(
            q.is_safe_to_cache_prepared(&diesel::mysql::Mysql)
                .expect("walk"),
            "{sql}"
        );
    }

    /// A soft delete's UPDATEs stay prepared (Diesel's own never do) and say what they say.
    #[cfg(feature = "mysql")]
    #[test]
    fn fixed_update_is_plain_and_kept_prepared() {
        use diesel::query_builder::QueryFragment;

        use super::{FixedUpdate, Val};
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 27)
            .and_then(|d| d.and_hms_opt(16, 0, 0))
            .expect("time");
        let q = FixedUpdate {
            table: "image_tags",
            set: &[
                ("deleted", Val::Bool(true)),
                ("deleted_at", Val::Time(now)),
                ("status", Val::Column("status")),
            ],
            filter: &[
                ("image_id", Val::Text("abc")),
                ("deleted", Val::Bool(false)),
            ],
        };
        let sql = diesel::debug_query::<diesel::mysql::Mysql, _>(&q).to_string();
        assert_eq!(
            sql,
            "UPDATE `image_tags` SET `deleted` = ?, `deleted_at` = ?, `status` = `status` \
             WHERE `image_id` = ? AND `deleted` = ? \
             -- binds: [true, 2026-11-27T16:00:00, \"abc\", false]"
        );
        assert!(
            q.is_safe_to_cache_prepared(&diesel::mysql::Mysql)
                .expect("walk")
        );
    }
}
