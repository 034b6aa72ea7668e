//! The registry's metadata-definitions service: the one owner of the `metadef_*` tables for
//! route handlers (a sibling of [`crate::catalog::Catalog`], which owns the image tables).
//! Reads run as one database closure; writes as one transaction through
//! [`Database::write`]. Metadefs are not image children, so the image write path (row lock,
//! change counter) does not apply; visibility is applied in `db::metadefs`. No HTTP here.

use std::collections::BTreeMap;

use glance_model::Context;
use glance_model::metadef::{
    Association, AssociationInput, FullNamespace, ListedNamespace, Namespace, NamespaceInput,
    NamespaceQuery, NewNamespace, Object, ObjectInput, ResourceType, Tag, TagsInput,
};
use serde_json::Value;

use crate::db::{Database, metadefs, transaction};
use crate::error::RegistryError;

/// The metadefs service over one database.
#[derive(Clone, Debug)]
pub struct Metadefs {
    db: Database,
}

impl Metadefs {
    /// The service over this database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// `db::metadefs::list`, as one read.
    pub async fn list_namespaces(
        &self,
        ctx: Context,
        q: NamespaceQuery,
    ) -> Result<Vec<ListedNamespace>, RegistryError> {
        self.db.run(move |c| metadefs::list(c, &ctx, &q)).await
    }

    /// `db::metadefs::show`, as one read.
    pub async fn show_namespace(
        &self,
        ctx: Context,
        name: String,
    ) -> Result<FullNamespace, RegistryError> {
        self.db.run(move |c| metadefs::show(c, &ctx, &name)).await
    }

    /// `db::metadefs::create`, in one transaction.
    pub async fn create_namespace(
        &self,
        ctx: Context,
        new: NewNamespace,
    ) -> Result<FullNamespace, RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::create(c, &ctx, &new)))
            .await
    }

    /// `db::metadefs::update`, in one transaction.
    pub async fn update_namespace(
        &self,
        ctx: Context,
        name: String,
        input: NamespaceInput,
    ) -> Result<Namespace, RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::update(c, &ctx, &name, &input)))
            .await
    }

    /// `db::metadefs::delete`, in one transaction.
    pub async fn delete_namespace(&self, ctx: Context, name: String) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::delete(c, &ctx, &name)))
            .await
    }

    /// `db::metadefs::properties`, as one read.
    pub async fn properties(
        &self,
        ctx: Context,
        ns: String,
    ) -> Result<BTreeMap<String, Value>, RegistryError> {
        self.db
            .run(move |c| metadefs::properties(c, &ctx, &ns))
            .await
    }

    /// `db::metadefs::property`, as one read.
    pub async fn property(
        &self,
        ctx: Context,
        ns: String,
        name: String,
    ) -> Result<Value, RegistryError> {
        self.db
            .run(move |c| metadefs::property(c, &ctx, &ns, &name))
            .await
    }

    /// `db::metadefs::add_property`, in one transaction.
    pub async fn add_property(
        &self,
        ctx: Context,
        ns: String,
        name: String,
        def: Value,
    ) -> Result<Value, RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::add_property(c, &ctx, &ns, &name, &def)))
            .await
    }

    /// `db::metadefs::update_property`, in one transaction.
    pub async fn update_property(
        &self,
        ctx: Context,
        ns: String,
        name: String,
        new_name: String,
        def: Value,
    ) -> Result<Value, RegistryError> {
        self.db
            .write(move |c| {
                transaction(c, |c| {
                    metadefs::update_property(c, &ctx, &ns, &name, &new_name, &def)
                })
            })
            .await
    }

    /// `db::metadefs::delete_property`, in one transaction.
    pub async fn delete_property(
        &self,
        ctx: Context,
        ns: String,
        name: String,
    ) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::delete_property(c, &ctx, &ns, &name)))
            .await
    }

    /// `db::metadefs::delete_properties`, in one transaction.
    pub async fn delete_properties(&self, ctx: Context, ns: String) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::delete_properties(c, &ctx, &ns)))
            .await
    }

    /// `db::metadefs::objects`, as one read.
    pub async fn objects(&self, ctx: Context, ns: String) -> Result<Vec<Object>, RegistryError> {
        self.db.run(move |c| metadefs::objects(c, &ctx, &ns)).await
    }

    /// `db::metadefs::object`, as one read.
    pub async fn object(
        &self,
        ctx: Context,
        ns: String,
        name: String,
    ) -> Result<Object, RegistryError> {
        self.db
            .run(move |c| metadefs::object(c, &ctx, &ns, &name))
            .await
    }

    /// `db::metadefs::add_object`, in one transaction.
    pub async fn add_object(
        &self,
        ctx: Context,
        ns: String,
        o: ObjectInput,
    ) -> Result<Object, RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::add_object(c, &ctx, &ns, &o)))
            .await
    }

    /// `db::metadefs::update_object`, in one transaction.
    pub async fn update_object(
        &self,
        ctx: Context,
        ns: String,
        name: String,
        o: ObjectInput,
    ) -> Result<Object, RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::update_object(c, &ctx, &ns, &name, &o)))
            .await
    }

    /// `db::metadefs::delete_object`, in one transaction.
    pub async fn delete_object(
        &self,
        ctx: Context,
        ns: String,
        name: String,
    ) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::delete_object(c, &ctx, &ns, &name)))
            .await
    }

    /// `db::metadefs::delete_objects`, in one transaction.
    pub async fn delete_objects(&self, ctx: Context, ns: String) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::delete_objects(c, &ctx, &ns)))
            .await
    }

    /// `db::metadefs::tags`, as one read.
    pub async fn tags(&self, ctx: Context, ns: String) -> Result<Vec<Tag>, RegistryError> {
        self.db.run(move |c| metadefs::tags(c, &ctx, &ns)).await
    }

    /// `db::metadefs::get_tag`, as one read.
    pub async fn tag(&self, ctx: Context, ns: String, name: String) -> Result<Tag, RegistryError> {
        self.db
            .run(move |c| metadefs::get_tag(c, &ctx, &ns, &name))
            .await
    }

    /// `db::metadefs::add_tag`, in one transaction.
    pub async fn add_tag(
        &self,
        ctx: Context,
        ns: String,
        name: String,
    ) -> Result<Tag, RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::add_tag(c, &ctx, &ns, &name)))
            .await
    }

    /// `db::metadefs::set_tags`, in one transaction.
    pub async fn set_tags(
        &self,
        ctx: Context,
        ns: String,
        input: TagsInput,
    ) -> Result<Vec<Tag>, RegistryError> {
        self.db
            .write(move |c| {
                transaction(c, |c| {
                    metadefs::set_tags(c, &ctx, &ns, &input.tags, input.append)
                })
            })
            .await
    }

    /// `db::metadefs::rename_tag`, in one transaction.
    pub async fn rename_tag(
        &self,
        ctx: Context,
        ns: String,
        name: String,
        new_name: String,
    ) -> Result<Tag, RegistryError> {
        self.db
            .write(move |c| {
                transaction(c, |c| metadefs::rename_tag(c, &ctx, &ns, &name, &new_name))
            })
            .await
    }

    /// `db::metadefs::delete_tag`, in one transaction.
    pub async fn delete_tag(
        &self,
        ctx: Context,
        ns: String,
        name: String,
    ) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::delete_tag(c, &ctx, &ns, &name)))
            .await
    }

    /// `db::metadefs::delete_tags`, in one transaction.
    pub async fn delete_tags(&self, ctx: Context, ns: String) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::delete_tags(c, &ctx, &ns)))
            .await
    }

    /// `db::metadefs::resource_types`, as one read.
    pub async fn resource_types(&self) -> Result<Vec<ResourceType>, RegistryError> {
        self.db.run(metadefs::resource_types).await
    }

    /// `db::metadefs::associations`, as one read.
    pub async fn associations(
        &self,
        ctx: Context,
        ns: String,
    ) -> Result<Vec<Association>, RegistryError> {
        self.db
            .run(move |c| metadefs::associations(c, &ctx, &ns))
            .await
    }

    /// `db::metadefs::associate`, in one transaction.
    pub async fn associate(
        &self,
        ctx: Context,
        ns: String,
        a: AssociationInput,
    ) -> Result<Association, RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::associate(c, &ctx, &ns, &a)))
            .await
    }

    /// `db::metadefs::dissociate`, in one transaction.
    pub async fn dissociate(
        &self,
        ctx: Context,
        ns: String,
        rt: String,
    ) -> Result<(), RegistryError> {
        self.db
            .write(move |c| transaction(c, |c| metadefs::dissociate(c, &ctx, &ns, &rt)))
            .await
    }
}
