//! Queries on Glance's `metadef_*` tables: namespaces and their properties, objects, tags and
//! resource-type associations. Metadefs are hard-deleted (the tables have no `deleted`
//! column) and are not image children: none of the image write path's rules apply here. Each
//! public write is meant to run inside one transaction ([`crate::db::Database::write`]).
//!
//! Who may see a namespace is [`glance_model::metadef::visible`], applied to every lookup
//! here: a namespace the caller may not see is a 404, as a missing one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use glance_model::Context;
use glance_model::metadef::{
    Association, AssociationInput, FullNamespace, ListedNamespace, Namespace, NamespaceInput,
    NamespaceQuery, NewNamespace, Object, ObjectInput, ResourceType, Tag, TagInput, stored_schema,
    visible,
};
use serde_json::Value;

use super::DbConnection;
use super::schema::{
    metadef_namespace_resource_types as assoc, metadef_namespaces as ns, metadef_objects as obj,
    metadef_properties as prop, metadef_resource_types as rt, metadef_tags as tag,
};
use crate::error::RegistryError;

type NsRow = (
    i32,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<bool>,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

const NS_COLUMNS: (
    ns::id,
    ns::namespace,
    ns::display_name,
    ns::description,
    ns::visibility,
    ns::protected,
    ns::owner,
    ns::created_at,
    ns::updated_at,
) = (
    ns::id,
    ns::namespace,
    ns::display_name,
    ns::description,
    ns::visibility,
    ns::protected,
    ns::owner,
    ns::created_at,
    ns::updated_at,
);

fn namespace_of(r: NsRow) -> (i32, Namespace) {
    (
        r.0,
        Namespace {
            namespace: r.1,
            display_name: r.2,
            description: r.3,
            // Glance's loader leaves visibility NULL for none given; Glance reads that as private.
            visibility: r.4.unwrap_or_else(|| "private".to_string()),
            protected: r.5.unwrap_or(false),
            owner: r.6,
            created_at: r.7,
            updated_at: r.8,
        },
    )
}

fn corrupt(what: &str, e: &dyn std::fmt::Display) -> RegistryError {
    RegistryError::Corrupt(format!("{what}: {e}"))
}

/// The namespace named `name` if the caller may see it, with its row id; else 404.
pub fn find(
    conn: &mut DbConnection,
    ctx: &Context,
    name: &str,
) -> Result<(i32, Namespace), RegistryError> {
    let row: Option<NsRow> = ns::table
        .select(NS_COLUMNS)
        .filter(ns::namespace.eq(name))
        .first(conn)
        .optional()?;
    match row.map(namespace_of) {
        Some((id, n)) if visible(ctx, &n.owner, &n.visibility) => Ok((id, n)),
        _ => Err(RegistryError::not_found(format!(
            "Metadata definition namespace={name} was not found."
        ))),
    }
}

/// One page of the namespaces the caller may see, each with its associations.
pub fn list(
    conn: &mut DbConnection,
    ctx: &Context,
    q: &NamespaceQuery,
) -> Result<Vec<ListedNamespace>, RegistryError> {
    q.validate()?;
    let mut query = ns::table.select(NS_COLUMNS).into_boxed();
    if !ctx.is_admin {
        let project = ctx.project_id.clone().unwrap_or_default();
        query = query.filter(ns::visibility.eq("public").or(ns::owner.eq(project)));
    }
    if let Some(v) = &q.visibility {
        query = if v == "private" {
            query.filter(ns::visibility.eq("private").or(ns::visibility.is_null()))
        } else {
            query.filter(ns::visibility.eq(v.clone()))
        };
    }
    let mut rows: Vec<(i32, Namespace)> = query
        .load::<NsRow>(conn)?
        .into_iter()
        .map(namespace_of)
        .collect();
    let mut links = associations_by_namespace(conn, rows.iter().map(|(id, _)| *id).collect())?;
    if let Some(wanted) = &q.resource_types {
        let wanted: BTreeSet<&str> = wanted.split(',').map(str::trim).collect();
        rows.retain(|(id, _)| {
            links
                .get(id)
                .is_some_and(|a| a.iter().any(|a| wanted.contains(a.name.as_str())))
        });
    }
    let key = q.sort_key.as_deref().unwrap_or("created_at");
    let ascending = q.sort_dir.as_deref() == Some("asc");
    rows.sort_by(|(ia, a), (ib, b)| {
        let order = match key {
            "namespace" => a.namespace.cmp(&b.namespace),
            "display_name" => a.display_name.cmp(&b.display_name),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            _ => a.created_at.cmp(&b.created_at),
        }
        .then(ia.cmp(ib));
        if ascending { order } else { order.reverse() }
    });
    let start = match &q.marker {
        None => 0,
        Some(m) => {
            rows.iter()
                .position(|(_, n)| &n.namespace == m)
                .ok_or_else(|| RegistryError::bad_request(format!("Marker {m} not found")))?
                + 1
        }
    };
    let limit = q.limit.unwrap_or(usize::MAX);
    Ok(rows
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(id, namespace)| ListedNamespace {
            namespace,
            resource_type_associations: links.remove(&id).unwrap_or_default(),
        })
        .collect())
}

type AssocRow = (
    i32,
    String,
    Option<String>,
    Option<String>,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

fn associations_by_namespace(
    conn: &mut DbConnection,
    ids: Vec<i32>,
) -> Result<BTreeMap<i32, Vec<Association>>, RegistryError> {
    let mut out: BTreeMap<i32, Vec<Association>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<AssocRow> = assoc::table
        .inner_join(rt::table)
        .select((
            assoc::namespace_id,
            rt::name,
            assoc::prefix,
            assoc::properties_target,
            assoc::created_at,
            assoc::updated_at,
        ))
        .filter(assoc::namespace_id.eq_any(ids))
        .order((assoc::namespace_id, rt::name))
        .load(conn)?;
    for (id, name, prefix, properties_target, created_at, updated_at) in rows {
        out.entry(id).or_default().push(Association {
            name,
            prefix,
            properties_target,
            created_at,
            updated_at,
        });
    }
    Ok(out)
}

/// A namespace with everything it holds.
pub fn show(
    conn: &mut DbConnection,
    ctx: &Context,
    name: &str,
) -> Result<FullNamespace, RegistryError> {
    let (id, namespace) = find(conn, ctx, name)?;
    full(conn, id, namespace)
}

fn full(
    conn: &mut DbConnection,
    id: i32,
    namespace: Namespace,
) -> Result<FullNamespace, RegistryError> {
    Ok(FullNamespace {
        namespace,
        resource_type_associations: associations_by_namespace(conn, vec![id])?
            .remove(&id)
            .unwrap_or_default(),
        properties: properties_of(conn, id)?,
        objects: objects_of(conn, id, None)?,
        tags: tags_of(conn, id, None)?,
    })
}

fn taken(what: &str, name: &str, namespace: &str) -> RegistryError {
    RegistryError::conflict(format!(
        "A metadata definition {what} with name={name} already exists in namespace={namespace}."
    ))
}

/// Creates a namespace and its initial contents; the owner defaults to the caller's project.
pub fn create(
    conn: &mut DbConnection,
    ctx: &Context,
    new: &NewNamespace,
) -> Result<FullNamespace, RegistryError> {
    new.validate()?;
    let name = &new.input.namespace;
    let exists: i64 = ns::table
        .filter(ns::namespace.eq(name))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(RegistryError::conflict(format!(
            "Metadata definition namespace={name} already exists."
        )));
    }
    let now = glance_model::time::now();
    let owner = new
        .input
        .owner
        .clone()
        .or_else(|| ctx.project_id.clone())
        .unwrap_or_default();
    diesel::insert_into(ns::table)
        .values((
            ns::namespace.eq(name),
            ns::display_name.eq(&new.input.display_name),
            ns::description.eq(&new.input.description),
            ns::visibility.eq(new.input.visibility.as_deref().unwrap_or("private")),
            ns::protected.eq(new.input.protected.unwrap_or(false)),
            ns::owner.eq(&owner),
            ns::created_at.eq(now),
            ns::updated_at.eq(now),
        ))
        .execute(conn)?;
    let id: i32 = ns::table
        .select(ns::id)
        .filter(ns::namespace.eq(name))
        .first(conn)?;
    for a in &new.resource_type_associations {
        associate_id(conn, id, name, a, now)?;
    }
    for (pname, def) in &new.properties {
        insert_property(conn, id, name, pname, def, now)?;
    }
    for o in &new.objects {
        insert_object(conn, id, name, o, now)?;
    }
    let mut seen = BTreeSet::new();
    for t in &new.tags {
        if !seen.insert(t.name.as_str()) {
            return Err(RegistryError::conflict(format!(
                "Duplicate tag {} in the request",
                t.name
            )));
        }
        insert_tag(conn, id, name, &t.name, now)?;
    }
    let (_, namespace) = namespace_of(
        ns::table
            .select(NS_COLUMNS)
            .filter(ns::id.eq(id))
            .first(conn)?,
    );
    full(conn, id, namespace)
}

/// Replaces a namespace's attributes (a changed `namespace` renames it); fields left out go
/// back to their defaults, except the owner, which stays.
pub fn update(
    conn: &mut DbConnection,
    ctx: &Context,
    name: &str,
    input: &NamespaceInput,
) -> Result<Namespace, RegistryError> {
    input.validate()?;
    let (id, old) = find(conn, ctx, name)?;
    if input.namespace != name {
        let exists: i64 = ns::table
            .filter(ns::namespace.eq(&input.namespace))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(RegistryError::conflict(format!(
                "Metadata definition namespace={} already exists.",
                input.namespace
            )));
        }
    }
    diesel::update(ns::table.filter(ns::id.eq(id)))
        .set((
            ns::namespace.eq(&input.namespace),
            ns::display_name.eq(&input.display_name),
            ns::description.eq(&input.description),
            ns::visibility.eq(input.visibility.as_deref().unwrap_or("private")),
            ns::protected.eq(input.protected.unwrap_or(false)),
            ns::owner.eq(input.owner.as_deref().unwrap_or(&old.owner)),
            ns::updated_at.eq(glance_model::time::now()),
        ))
        .execute(conn)?;
    let row: NsRow = ns::table
        .select(NS_COLUMNS)
        .filter(ns::id.eq(id))
        .first(conn)?;
    Ok(namespace_of(row).1)
}

/// Deletes a namespace and everything in it; a protected one is refused (403).
pub fn delete(conn: &mut DbConnection, ctx: &Context, name: &str) -> Result<(), RegistryError> {
    let (id, n) = find(conn, ctx, name)?;
    if n.protected {
        return Err(RegistryError::forbidden(format!(
            "Namespace {name} is protected and cannot be deleted."
        )));
    }
    delete_id(conn, id)
}

fn delete_id(conn: &mut DbConnection, id: i32) -> Result<(), RegistryError> {
    diesel::delete(assoc::table.filter(assoc::namespace_id.eq(id))).execute(conn)?;
    diesel::delete(prop::table.filter(prop::namespace_id.eq(id))).execute(conn)?;
    diesel::delete(obj::table.filter(obj::namespace_id.eq(id))).execute(conn)?;
    diesel::delete(tag::table.filter(tag::namespace_id.eq(id))).execute(conn)?;
    diesel::delete(ns::table.filter(ns::id.eq(id))).execute(conn)?;
    Ok(())
}

/// Deletes every namespace and resource type (glance-manage db_unload_metadefs).
pub fn unload_all(conn: &mut DbConnection) -> Result<(), RegistryError> {
    diesel::delete(assoc::table).execute(conn)?;
    diesel::delete(prop::table).execute(conn)?;
    diesel::delete(obj::table).execute(conn)?;
    diesel::delete(tag::table).execute(conn)?;
    diesel::delete(ns::table).execute(conn)?;
    diesel::delete(rt::table).execute(conn)?;
    Ok(())
}

/// Deletes one namespace by name, whatever its protection (glance-manage's overwrite).
pub fn delete_by_name(conn: &mut DbConnection, name: &str) -> Result<bool, RegistryError> {
    let id: Option<i32> = ns::table
        .select(ns::id)
        .filter(ns::namespace.eq(name))
        .first(conn)
        .optional()?;
    match id {
        Some(id) => delete_id(conn, id).map(|()| true),
        None => Ok(false),
    }
}

/// The names of every namespace, whoever owns it (glance-manage).
pub fn all_names(conn: &mut DbConnection) -> Result<Vec<String>, RegistryError> {
    Ok(ns::table
        .select(ns::namespace)
        .order(ns::namespace)
        .load(conn)?)
}

// ---------------------------------------------------------------- properties

fn parse_schema(what: &str, text: &str) -> Result<Value, RegistryError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, &e))
}

fn properties_of(
    conn: &mut DbConnection,
    id: i32,
) -> Result<BTreeMap<String, Value>, RegistryError> {
    let rows: Vec<(String, String)> = prop::table
        .select((prop::name, prop::json_schema))
        .filter(prop::namespace_id.eq(id))
        .load(conn)?;
    rows.into_iter()
        .map(|(name, text)| {
            let v = parse_schema(&format!("metadef property {name}"), &text)?;
            Ok((name, v))
        })
        .collect()
}

fn insert_property(
    conn: &mut DbConnection,
    id: i32,
    namespace: &str,
    name: &str,
    def: &Value,
    now: NaiveDateTime,
) -> Result<(), RegistryError> {
    glance_model::metadef::check_property(name, def)?;
    let exists: i64 = prop::table
        .filter(prop::namespace_id.eq(id))
        .filter(prop::name.eq(name))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(taken("property", name, namespace));
    }
    diesel::insert_into(prop::table)
        .values((
            prop::namespace_id.eq(id),
            prop::name.eq(name),
            prop::json_schema.eq(stored_schema(def).to_string()),
            prop::created_at.eq(now),
            prop::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A namespace's properties.
pub fn properties(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
) -> Result<BTreeMap<String, Value>, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    properties_of(conn, id)
}

fn no_property(name: &str, namespace: &str) -> RegistryError {
    RegistryError::not_found(format!(
        "Could not find property {name} in namespace {namespace}."
    ))
}

/// One property's definition (without its name).
pub fn property(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Value, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    let text: Option<String> = prop::table
        .select(prop::json_schema)
        .filter(prop::namespace_id.eq(id))
        .filter(prop::name.eq(name))
        .first(conn)
        .optional()?;
    let text = text.ok_or_else(|| no_property(name, namespace))?;
    parse_schema(&format!("metadef property {name}"), &text)
}

/// Adds a property.
pub fn add_property(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
    def: &Value,
) -> Result<Value, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    insert_property(conn, id, namespace, name, def, glance_model::time::now())?;
    Ok(stored_schema(def))
}

/// Replaces a property's definition; `new_name` renames it.
pub fn update_property(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
    new_name: &str,
    def: &Value,
) -> Result<Value, RegistryError> {
    glance_model::metadef::check_property(new_name, def)?;
    let (id, _) = find(conn, ctx, namespace)?;
    if new_name != name {
        let clash: i64 = prop::table
            .filter(prop::namespace_id.eq(id))
            .filter(prop::name.eq(new_name))
            .count()
            .get_result(conn)?;
        if clash > 0 {
            return Err(taken("property", new_name, namespace));
        }
    }
    let changed = diesel::update(
        prop::table
            .filter(prop::namespace_id.eq(id))
            .filter(prop::name.eq(name)),
    )
    .set((
        prop::name.eq(new_name),
        prop::json_schema.eq(stored_schema(def).to_string()),
        prop::updated_at.eq(glance_model::time::now()),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Err(no_property(name, namespace));
    }
    Ok(stored_schema(def))
}

/// Removes one property.
pub fn delete_property(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(), RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    let gone = diesel::delete(
        prop::table
            .filter(prop::namespace_id.eq(id))
            .filter(prop::name.eq(name)),
    )
    .execute(conn)?;
    if gone == 0 {
        return Err(no_property(name, namespace));
    }
    Ok(())
}

/// Removes every property of a namespace.
pub fn delete_properties(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
) -> Result<(), RegistryError> {
    let (id, n) = find(conn, ctx, namespace)?;
    protected_contents(&n)?;
    diesel::delete(prop::table.filter(prop::namespace_id.eq(id))).execute(conn)?;
    Ok(())
}

/// Glance refuses to empty a protected namespace of its properties, objects or tags.
fn protected_contents(n: &Namespace) -> Result<(), RegistryError> {
    if n.protected {
        return Err(RegistryError::forbidden(format!(
            "Namespace {} is protected; its contents cannot be deleted all at once.",
            n.namespace
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- objects

type ObjRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

fn object_of(r: ObjRow) -> Result<Object, RegistryError> {
    let what = format!("metadef object {}", r.0);
    let required: Vec<String> = match r.2.as_deref() {
        None | Some("") => Vec::new(),
        Some(text) => serde_json::from_str(text).map_err(|e| corrupt(&what, &e))?,
    };
    let schema = parse_schema(&what, &r.3)?;
    let properties = match schema {
        Value::Object(m) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    Ok(Object {
        name: r.0,
        description: r.1,
        required,
        properties,
        created_at: r.4,
        updated_at: r.5,
    })
}

fn objects_of(
    conn: &mut DbConnection,
    id: i32,
    name: Option<&str>,
) -> Result<Vec<Object>, RegistryError> {
    let mut q = obj::table
        .select((
            obj::name,
            obj::description,
            obj::required,
            obj::json_schema,
            obj::created_at,
            obj::updated_at,
        ))
        .filter(obj::namespace_id.eq(id))
        .order(obj::name)
        .into_boxed();
    if let Some(name) = name {
        q = q.filter(obj::name.eq(name.to_string()));
    }
    q.load::<ObjRow>(conn)?.into_iter().map(object_of).collect()
}

fn object_columns(o: &ObjectInput) -> Result<(String, String), RegistryError> {
    let required = serde_json::to_string(&o.required).map_err(|e| corrupt("required", &e))?;
    let props: serde_json::Map<String, Value> = o
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), stored_schema(v)))
        .collect();
    Ok((required, Value::Object(props).to_string()))
}

fn insert_object(
    conn: &mut DbConnection,
    id: i32,
    namespace: &str,
    o: &ObjectInput,
    now: NaiveDateTime,
) -> Result<(), RegistryError> {
    o.validate()?;
    let exists: i64 = obj::table
        .filter(obj::namespace_id.eq(id))
        .filter(obj::name.eq(&o.name))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(taken("object", &o.name, namespace));
    }
    let (required, schema) = object_columns(o)?;
    diesel::insert_into(obj::table)
        .values((
            obj::namespace_id.eq(id),
            obj::name.eq(&o.name),
            obj::description.eq(&o.description),
            obj::required.eq(required),
            obj::json_schema.eq(schema),
            obj::created_at.eq(now),
            obj::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

fn no_object(name: &str, namespace: &str) -> RegistryError {
    RegistryError::not_found(format!(
        "Could not find metadata object {name} in namespace {namespace}."
    ))
}

/// A namespace's objects, by name.
pub fn objects(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
) -> Result<Vec<Object>, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    objects_of(conn, id, None)
}

/// One object.
pub fn object(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Object, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    objects_of(conn, id, Some(name))?
        .pop()
        .ok_or_else(|| no_object(name, namespace))
}

/// Adds an object.
pub fn add_object(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    o: &ObjectInput,
) -> Result<Object, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    insert_object(conn, id, namespace, o, glance_model::time::now())?;
    objects_of(conn, id, Some(&o.name))?
        .pop()
        .ok_or_else(|| no_object(&o.name, namespace))
}

/// Replaces an object (a changed name renames it).
pub fn update_object(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
    o: &ObjectInput,
) -> Result<Object, RegistryError> {
    o.validate()?;
    let (id, _) = find(conn, ctx, namespace)?;
    if o.name != name {
        let clash: i64 = obj::table
            .filter(obj::namespace_id.eq(id))
            .filter(obj::name.eq(&o.name))
            .count()
            .get_result(conn)?;
        if clash > 0 {
            return Err(taken("object", &o.name, namespace));
        }
    }
    let (required, schema) = object_columns(o)?;
    let changed = diesel::update(
        obj::table
            .filter(obj::namespace_id.eq(id))
            .filter(obj::name.eq(name)),
    )
    .set((
        obj::name.eq(&o.name),
        obj::description.eq(&o.description),
        obj::required.eq(required),
        obj::json_schema.eq(schema),
        obj::updated_at.eq(glance_model::time::now()),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Err(no_object(name, namespace));
    }
    objects_of(conn, id, Some(&o.name))?
        .pop()
        .ok_or_else(|| no_object(&o.name, namespace))
}

/// Removes one object.
pub fn delete_object(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(), RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    let gone = diesel::delete(
        obj::table
            .filter(obj::namespace_id.eq(id))
            .filter(obj::name.eq(name)),
    )
    .execute(conn)?;
    if gone == 0 {
        return Err(no_object(name, namespace));
    }
    Ok(())
}

/// Removes every object of a namespace.
pub fn delete_objects(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
) -> Result<(), RegistryError> {
    let (id, n) = find(conn, ctx, namespace)?;
    protected_contents(&n)?;
    diesel::delete(obj::table.filter(obj::namespace_id.eq(id))).execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------- tags

fn tags_of(
    conn: &mut DbConnection,
    id: i32,
    name: Option<&str>,
) -> Result<Vec<Tag>, RegistryError> {
    let mut q = tag::table
        .select((tag::name, tag::created_at, tag::updated_at))
        .filter(tag::namespace_id.eq(id))
        .order(tag::name)
        .into_boxed();
    if let Some(name) = name {
        q = q.filter(tag::name.eq(name.to_string()));
    }
    Ok(
        q.load::<(String, NaiveDateTime, Option<NaiveDateTime>)>(conn)?
            .into_iter()
            .map(|(name, created_at, updated_at)| Tag {
                name,
                created_at,
                updated_at,
            })
            .collect(),
    )
}

fn insert_tag(
    conn: &mut DbConnection,
    id: i32,
    namespace: &str,
    name: &str,
    now: NaiveDateTime,
) -> Result<(), RegistryError> {
    glance_model::metadef::check_name("tag name", name)?;
    let exists: i64 = tag::table
        .filter(tag::namespace_id.eq(id))
        .filter(tag::name.eq(name))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(taken("tag", name, namespace));
    }
    diesel::insert_into(tag::table)
        .values((
            tag::namespace_id.eq(id),
            tag::name.eq(name),
            tag::created_at.eq(now),
            tag::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

fn no_tag(name: &str, namespace: &str) -> RegistryError {
    RegistryError::not_found(format!(
        "Could not find metadata tag {name} in namespace {namespace}."
    ))
}

/// A namespace's tags, by name.
pub fn tags(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
) -> Result<Vec<Tag>, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    tags_of(conn, id, None)
}

/// One tag.
pub fn get_tag(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Tag, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    tags_of(conn, id, Some(name))?
        .pop()
        .ok_or_else(|| no_tag(name, namespace))
}

/// Adds one tag (409 if it exists).
pub fn add_tag(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Tag, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    insert_tag(conn, id, namespace, name, glance_model::time::now())?;
    tags_of(conn, id, Some(name))?
        .pop()
        .ok_or_else(|| no_tag(name, namespace))
}

/// Sets the tags: replaces them all, or with `append` adds to them. A name given twice, or
/// (appending) one the namespace has, is a 409 and nothing changes.
pub fn set_tags(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    tags: &[TagInput],
    append: bool,
) -> Result<Vec<Tag>, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    let mut seen = BTreeSet::new();
    for t in tags {
        glance_model::metadef::check_name("tag name", &t.name)?;
        if !seen.insert(t.name.as_str()) {
            return Err(RegistryError::conflict(format!(
                "Duplicate tag {} in the request",
                t.name
            )));
        }
    }
    if !append {
        diesel::delete(tag::table.filter(tag::namespace_id.eq(id))).execute(conn)?;
    }
    let now = glance_model::time::now();
    for t in tags {
        insert_tag(conn, id, namespace, &t.name, now)?;
    }
    let wanted: BTreeSet<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    Ok(tags_of(conn, id, None)?
        .into_iter()
        .filter(|t| wanted.contains(t.name.as_str()))
        .collect())
}

/// Renames a tag.
pub fn rename_tag(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
    new_name: &str,
) -> Result<Tag, RegistryError> {
    glance_model::metadef::check_name("tag name", new_name)?;
    let (id, _) = find(conn, ctx, namespace)?;
    if new_name != name {
        let clash: i64 = tag::table
            .filter(tag::namespace_id.eq(id))
            .filter(tag::name.eq(new_name))
            .count()
            .get_result(conn)?;
        if clash > 0 {
            return Err(taken("tag", new_name, namespace));
        }
    }
    let changed = diesel::update(
        tag::table
            .filter(tag::namespace_id.eq(id))
            .filter(tag::name.eq(name)),
    )
    .set((
        tag::name.eq(new_name),
        tag::updated_at.eq(glance_model::time::now()),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Err(no_tag(name, namespace));
    }
    tags_of(conn, id, Some(new_name))?
        .pop()
        .ok_or_else(|| no_tag(new_name, namespace))
}

/// Removes one tag.
pub fn delete_tag(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(), RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    let gone = diesel::delete(
        tag::table
            .filter(tag::namespace_id.eq(id))
            .filter(tag::name.eq(name)),
    )
    .execute(conn)?;
    if gone == 0 {
        return Err(no_tag(name, namespace));
    }
    Ok(())
}

/// Removes every tag of a namespace.
pub fn delete_tags(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
) -> Result<(), RegistryError> {
    let (id, n) = find(conn, ctx, namespace)?;
    protected_contents(&n)?;
    diesel::delete(tag::table.filter(tag::namespace_id.eq(id))).execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------- resource types

/// Every resource type, by name.
pub fn resource_types(conn: &mut DbConnection) -> Result<Vec<ResourceType>, RegistryError> {
    Ok(rt::table
        .select((rt::name, rt::created_at, rt::updated_at))
        .order(rt::name)
        .load::<(String, NaiveDateTime, Option<NaiveDateTime>)>(conn)?
        .into_iter()
        .map(|(name, created_at, updated_at)| ResourceType {
            name,
            created_at,
            updated_at,
        })
        .collect())
}

/// A namespace's associations.
pub fn associations(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
) -> Result<Vec<Association>, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    Ok(associations_by_namespace(conn, vec![id])?
        .remove(&id)
        .unwrap_or_default())
}

/// The id of the resource type `name`, made when it does not exist yet.
fn resource_type_id(
    conn: &mut DbConnection,
    name: &str,
    now: NaiveDateTime,
) -> Result<i32, RegistryError> {
    let found: Option<i32> = rt::table
        .select(rt::id)
        .filter(rt::name.eq(name))
        .first(conn)
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    diesel::insert_into(rt::table)
        .values((
            rt::name.eq(name),
            rt::protected.eq(false),
            rt::created_at.eq(now),
            rt::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(rt::table
        .select(rt::id)
        .filter(rt::name.eq(name))
        .first(conn)?)
}

fn associate_id(
    conn: &mut DbConnection,
    id: i32,
    namespace: &str,
    a: &AssociationInput,
    now: NaiveDateTime,
) -> Result<(), RegistryError> {
    a.validate()?;
    let rid = resource_type_id(conn, &a.name, now)?;
    let exists: i64 = assoc::table
        .filter(assoc::namespace_id.eq(id))
        .filter(assoc::resource_type_id.eq(rid))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(RegistryError::conflict(format!(
            "The metadata definition resource-type association of resource-type={} to \
             namespace={namespace}, already exists.",
            a.name
        )));
    }
    diesel::insert_into(assoc::table)
        .values((
            assoc::resource_type_id.eq(rid),
            assoc::namespace_id.eq(id),
            assoc::prefix.eq(&a.prefix),
            assoc::properties_target.eq(&a.properties_target),
            assoc::created_at.eq(now),
            assoc::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Associates a namespace with a resource type (made if new).
pub fn associate(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    a: &AssociationInput,
) -> Result<Association, RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    associate_id(conn, id, namespace, a, glance_model::time::now())?;
    associations_by_namespace(conn, vec![id])?
        .remove(&id)
        .unwrap_or_default()
        .into_iter()
        .find(|x| x.name == a.name)
        .ok_or_else(|| RegistryError::Corrupt("association not read back".to_string()))
}

/// Removes an association.
pub fn dissociate(
    conn: &mut DbConnection,
    ctx: &Context,
    namespace: &str,
    resource_type: &str,
) -> Result<(), RegistryError> {
    let (id, _) = find(conn, ctx, namespace)?;
    let rid: Option<i32> = rt::table
        .select(rt::id)
        .filter(rt::name.eq(resource_type))
        .first(conn)
        .optional()?;
    let gone = match rid {
        Some(rid) => diesel::delete(
            assoc::table
                .filter(assoc::namespace_id.eq(id))
                .filter(assoc::resource_type_id.eq(rid)),
        )
        .execute(conn)?,
        None => 0,
    };
    if gone == 0 {
        return Err(RegistryError::not_found(format!(
            "Failed to find resource type association {resource_type} in namespace {namespace}."
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- catalogue files (glance-manage)

/// How `db_load_metadefs` treats a namespace that is already in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Leave it as it is (no `--merge`).
    Skip,
    /// Add what it lacks; with `prefer_new`, also replace what both have.
    Merge {
        /// `--prefer_new`.
        prefer_new: bool,
    },
    /// Empty it and load the file's contents (`--overwrite`).
    Overwrite,
}

/// What loading one namespace did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// It was new.
    Created,
    /// It existed and was merged or overwritten.
    Updated,
    /// It existed and was left alone.
    Skipped,
}

fn field<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

/// Loads one namespace in Glance's catalogue-file format (no validation beyond shape, as
/// Glance's loader: the shipped files are trusted). The owner defaults to `admin`.
pub fn load_namespace(
    conn: &mut DbConnection,
    doc: &Value,
    mode: LoadMode,
) -> Result<Loaded, RegistryError> {
    let name = field(doc, "namespace")
        .ok_or_else(|| RegistryError::bad_request("a catalogue file needs a 'namespace' string"))?;
    check_name_len(name)?;
    let now = glance_model::time::now();
    let existing: Option<i32> = ns::table
        .select(ns::id)
        .filter(ns::namespace.eq(name))
        .first(conn)
        .optional()?;
    let values = (
        ns::display_name.eq(field(doc, "display_name")),
        ns::description.eq(field(doc, "description")),
        ns::visibility.eq(field(doc, "visibility")),
        ns::protected.eq(doc.get("protected").and_then(Value::as_bool)),
        ns::owner.eq(field(doc, "owner").unwrap_or("admin")),
    );
    let (id, outcome, prefer_new) = match (existing, mode) {
        (Some(_), LoadMode::Skip) => return Ok(Loaded::Skipped),
        (Some(id), LoadMode::Overwrite) => {
            for table_delete in [
                diesel::delete(assoc::table.filter(assoc::namespace_id.eq(id))).execute(conn),
                diesel::delete(prop::table.filter(prop::namespace_id.eq(id))).execute(conn),
                diesel::delete(obj::table.filter(obj::namespace_id.eq(id))).execute(conn),
                diesel::delete(tag::table.filter(tag::namespace_id.eq(id))).execute(conn),
            ] {
                table_delete?;
            }
            diesel::update(ns::table.filter(ns::id.eq(id)))
                .set((values, ns::updated_at.eq(now)))
                .execute(conn)?;
            (id, Loaded::Updated, true)
        }
        (Some(id), LoadMode::Merge { prefer_new }) => {
            if prefer_new {
                diesel::update(ns::table.filter(ns::id.eq(id)))
                    .set((values, ns::updated_at.eq(now)))
                    .execute(conn)?;
            }
            (id, Loaded::Updated, prefer_new)
        }
        (None, _) => {
            diesel::insert_into(ns::table)
                .values((
                    ns::namespace.eq(name),
                    values,
                    ns::created_at.eq(now),
                    ns::updated_at.eq(now),
                ))
                .execute(conn)?;
            let id = ns::table
                .select(ns::id)
                .filter(ns::namespace.eq(name))
                .first(conn)?;
            (id, Loaded::Created, true)
        }
    };
    for a in doc
        .get("resource_type_associations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let a: AssociationInput = serde_json::from_value(a.clone())
            .map_err(|e| RegistryError::bad_request(format!("{name}: association: {e}")))?;
        let rid = resource_type_id(conn, &a.name, now)?;
        let target = assoc::table
            .filter(assoc::namespace_id.eq(id))
            .filter(assoc::resource_type_id.eq(rid));
        let have: i64 = target.count().get_result(conn)?;
        if have == 0 {
            diesel::insert_into(assoc::table)
                .values((
                    assoc::resource_type_id.eq(rid),
                    assoc::namespace_id.eq(id),
                    assoc::prefix.eq(&a.prefix),
                    assoc::properties_target.eq(&a.properties_target),
                    assoc::created_at.eq(now),
                    assoc::updated_at.eq(now),
                ))
                .execute(conn)?;
        } else if prefer_new {
            diesel::update(target)
                .set((
                    assoc::prefix.eq(&a.prefix),
                    assoc::properties_target.eq(&a.properties_target),
                    assoc::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    if let Some(props) = doc.get("properties").and_then(Value::as_object) {
        for (pname, def) in props {
            let text = stored_schema(def).to_string();
            let target = prop::table
                .filter(prop::namespace_id.eq(id))
                .filter(prop::name.eq(pname));
            let have: i64 = target.count().get_result(conn)?;
            if have == 0 {
                diesel::insert_into(prop::table)
                    .values((
                        prop::namespace_id.eq(id),
                        prop::name.eq(pname),
                        prop::json_schema.eq(text),
                        prop::created_at.eq(now),
                        prop::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            } else if prefer_new {
                diesel::update(target)
                    .set((prop::json_schema.eq(text), prop::updated_at.eq(now)))
                    .execute(conn)?;
            }
        }
    }
    for o in doc
        .get("objects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let o: ObjectInput = serde_json::from_value(o.clone())
            .map_err(|e| RegistryError::bad_request(format!("{name}: object: {e}")))?;
        let (required, schema) = object_columns(&o)?;
        let target = obj::table
            .filter(obj::namespace_id.eq(id))
            .filter(obj::name.eq(&o.name));
        let have: i64 = target.count().get_result(conn)?;
        if have == 0 {
            diesel::insert_into(obj::table)
                .values((
                    obj::namespace_id.eq(id),
                    obj::name.eq(&o.name),
                    obj::description.eq(&o.description),
                    obj::required.eq(required),
                    obj::json_schema.eq(schema),
                    obj::created_at.eq(now),
                    obj::updated_at.eq(now),
                ))
                .execute(conn)?;
        } else if prefer_new {
            diesel::update(target)
                .set((
                    obj::description.eq(&o.description),
                    obj::required.eq(required),
                    obj::json_schema.eq(schema),
                    obj::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    for t in doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(tname) = field(t, "name") else {
            return Err(RegistryError::bad_request(format!(
                "{name}: a tag needs a 'name'"
            )));
        };
        let have: i64 = tag::table
            .filter(tag::namespace_id.eq(id))
            .filter(tag::name.eq(tname))
            .count()
            .get_result(conn)?;
        if have == 0 {
            insert_tag(conn, id, name, tname, now)?;
        }
    }
    Ok(outcome)
}

fn check_name_len(name: &str) -> Result<(), RegistryError> {
    glance_model::metadef::check_name("namespace", name).map_err(Into::into)
}

/// One namespace in Glance's catalogue-file format (what `db_export_metadefs` writes).
pub fn export_namespace(conn: &mut DbConnection, name: &str) -> Result<Value, RegistryError> {
    let row: NsRow = ns::table
        .select(NS_COLUMNS)
        .filter(ns::namespace.eq(name))
        .first(conn)?;
    let (id, visibility, protected) = (row.0, row.4.clone(), row.5);
    let (_, n) = namespace_of(row);
    let assocs = associations_by_namespace(conn, vec![id])?
        .remove(&id)
        .unwrap_or_default();
    let objects = objects_of(conn, id, None)?;
    let tags = tags_of(conn, id, None)?;
    Ok(serde_json::json!({
        "namespace": n.namespace,
        "display_name": n.display_name,
        "description": n.description,
        "visibility": visibility,
        "protected": protected,
        "owner": n.owner,
        "resource_type_associations": assocs.iter().map(|a| serde_json::json!({
            "name": a.name, "prefix": a.prefix, "properties_target": a.properties_target,
        })).collect::<Vec<_>>(),
        "properties": properties_of(conn, id)?,
        "objects": objects.iter().map(|o| serde_json::json!({
            "name": o.name, "description": o.description, "required": o.required,
            "properties": o.properties,
        })).collect::<Vec<_>>(),
        "tags": tags.iter().map(|t| serde_json::json!({"name": t.name})).collect::<Vec<_>>(),
    }))
}
