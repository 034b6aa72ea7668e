//! The only code that knows glance-registry's URLs: a keep-alive HTTP client that forwards the
//! caller's context and request id on every call and maps registry answers back to error kinds
//! (it never relays a registry body verbatim unless it is a rule message meant for clients).

use std::time::Duration;

use glance_model::wire::{
    ErrorBody, HEADER_IS_ADMIN, HEADER_PROJECT_ID, HEADER_REPLAY, HEADER_REQUEST_ID, HEADER_ROLES,
    HEADER_USER_ID, ImageList, ImageUpdate, Lease, LeaseList, LeaseRequest, LeaseToken, MemberList,
    MemberUpdate, NewImage, NewMember, REGISTRY_CLIENT_IDLE_SECS, UploadComplete, Usage,
};
use std::collections::BTreeMap;

use glance_model::metadef::{
    Association, AssociationInput, FullNamespace, ListedNamespace, Namespace, NamespaceInput,
    NamespaceQuery, NewNamespace, Object, ObjectInput, ResourceType, Tag, TagsInput,
};
use glance_model::quota::{HEADER_IMAGE_QUOTAS, ImageQuotas};
use glance_model::{Context, ErrorKind, Image, ImageId, Member};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A client of one glance-registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    secret: Option<String>,
    /// The value of [`HEADER_IMAGE_QUOTAS`] sent on every write (`None`: all unlimited).
    quotas: Option<String>,
}

/// Longest glance-api's `/healthcheck` waits for the registry's: a little more than the
/// registry gives its database (700 ms), and under the second a load balancer's check allows.
pub const HEALTH_WITHIN: Duration = Duration::from_millis(900);

/// The pauses before each resend of a replayable write whose connection failed: about a
/// second and a half in all, long enough for a registry that systemd restarts.
const RESEND_AFTER: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(300),
    Duration::from_millis(1000),
];

/// Header carrying `registry_shared_secret` (the registry's `trusted-auth` mode).
pub const HEADER_REGISTRY_SECRET: &str = "x-glance-registry-secret";

fn kind_of(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 => ErrorKind::BadRequest,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        410 => ErrorKind::Gone,
        413 => ErrorKind::TooLarge,
        _ => ErrorKind::Unavailable,
    }
}

impl RegistryClient {
    /// A client for the registry at `base` (e.g. `http://127.0.0.1:9191`).
    pub fn new(base: &str, secret: Option<String>) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(REGISTRY_CLIENT_IDLE_SECS))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ApiError::Startup(format!("registry client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            secret,
            quotas: None,
        })
    }

    /// Sends these per-image limits with every write, for the registry to enforce under the
    /// image's row lock (see [`glance_model::quota`]).
    pub fn with_image_quotas(mut self, quotas: &ImageQuotas) -> Self {
        self.quotas = quotas.to_header();
        self
    }

    /// The registry's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One request to the registry, sent once: a failed connection is a 503.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ApiError> {
        self.sent(ctx, method, path, body, &[]).await
    }

    /// [`RegistryClient::call`] for a write the registry answers the same when it is sent
    /// again (see [`glance_model::replay`]): when the connection fails, before or after the
    /// request went out, it is sent again, marked as a resend, after each of
    /// [`RESEND_AFTER`]. So a registry that dies (or drops a keep-alive connection) between
    /// committing a create and answering it still gives the client the image it made, never
    /// a 503 that the client would answer with a second create. A timeout is not resent (the
    /// registry is alive but slow; the wait would only double).
    async fn replayable<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ApiError> {
        self.sent(ctx, method, path, body, &RESEND_AFTER).await
    }

    /// Sends a request, and sends it again after each of `resends` while the connection
    /// fails (not on a timeout); then reads the answer.
    async fn sent<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
        body: Option<&B>,
        resends: &[Duration],
    ) -> Result<Option<T>, ApiError> {
        let mut attempt = 0;
        loop {
            match self.send(ctx, method.clone(), path, body, attempt).await {
                Ok(resp) => return Self::read(resp).await,
                Err(e) if e.is_timeout() || attempt >= resends.len() => {
                    return Err(ApiError::RegistryUnavailable(crate::error::chain(&e)));
                }
                Err(e) => {
                    log::warn!(
                        "request {}: {method} {path} to the registry failed ({}); sending it again",
                        ctx.request_id,
                        crate::error::chain(&e)
                    );
                    tokio::time::sleep(resends[attempt]).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Sends one request; `attempt` above 0 marks it as a resend.
    async fn send<B: Serialize>(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
        body: Option<&B>,
        attempt: usize,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let write = method != Method::GET;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(HEADER_REQUEST_ID, &ctx.request_id)
            .header(HEADER_IS_ADMIN, if ctx.is_admin { "true" } else { "false" });
        if attempt > 0 {
            req = req.header(HEADER_REPLAY, attempt.to_string());
        }
        if let Some(q) = self.quotas.as_deref().filter(|_| write) {
            req = req.header(HEADER_IMAGE_QUOTAS, q);
        }
        if let Some(u) = &ctx.user_id {
            req = req.header(HEADER_USER_ID, u);
        }
        if let Some(p) = &ctx.project_id {
            req = req.header(HEADER_PROJECT_ID, p);
        }
        if !ctx.roles.is_empty() {
            req = req.header(HEADER_ROLES, ctx.roles.join(","));
        }
        if let Some(t) = &ctx.auth_token {
            req = req.header("x-auth-token", &t.0);
        }
        if let Some(s) = &self.secret {
            req = req.header(HEADER_REGISTRY_SECRET, s);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await
    }

    /// The registry's answer: its body, `None` for a 204, or the error it maps to.
    async fn read<T: DeserializeOwned>(resp: reqwest::Response) -> Result<Option<T>, ApiError> {
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status.is_success() {
            let unreadable = |e: &dyn std::fmt::Display| {
                ApiError::RegistryUnavailable(format!("unreadable registry answer: {e}"))
            };
            let body = resp.bytes().await.map_err(|e| unreadable(&e))?;
            // Checked as UTF-8 once, in one pass, then parsed as text: parsing bytes checked
            // every string on its own, which was ~3.5% of glance-api during a list.
            let text = std::str::from_utf8(&body).map_err(|e| unreadable(&e))?;
            return serde_json::from_str::<T>(text)
                .map(Some)
                .map_err(|e| unreadable(&e));
        }
        let kind = kind_of(status);
        let message = resp
            .json::<ErrorBody>()
            .await
            .map(|b| b.message)
            .unwrap_or_else(|_| format!("registry answered {status}"));
        if kind == ErrorKind::Unavailable {
            return Err(ApiError::RegistryUnavailable(message));
        }
        Err(ApiError::Registry { kind, message })
    }

    async fn expect<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        self.call(ctx, method, path, body)
            .await?
            .ok_or_else(|| ApiError::RegistryUnavailable("empty registry answer".to_string()))
    }

    async fn expect_replayable<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        self.replayable(ctx, method, path, body)
            .await?
            .ok_or_else(|| ApiError::RegistryUnavailable("empty registry answer".to_string()))
    }

    async fn no_content<B: Serialize>(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ApiError> {
        self.call::<B, serde_json::Value>(ctx, method, path, body)
            .await
            .map(|_| ())
    }

    // ------------------------------------------------------------ metadata definitions

    fn ns_path(namespace: &str, rest: &str) -> String {
        format!("/v1/metadefs/namespaces/{}{rest}", encode(namespace))
    }

    /// One page of the namespaces the caller may see, each with its associations.
    pub async fn list_namespaces(
        &self,
        ctx: &Context,
        q: &NamespaceQuery,
    ) -> Result<Vec<ListedNamespace>, ApiError> {
        let query = serde_urlencoded::to_string(q)
            .map_err(|e| ApiError::bad_request(format!("bad list query: {e}")))?;
        let path = format!("/v1/metadefs/namespaces?{query}");
        let list: NamespaceList = self.expect::<(), _>(ctx, Method::GET, &path, None).await?;
        Ok(list.namespaces)
    }

    /// A namespace with everything in it.
    pub async fn get_namespace(&self, ctx: &Context, ns: &str) -> Result<FullNamespace, ApiError> {
        self.expect::<(), _>(ctx, Method::GET, &Self::ns_path(ns, ""), None)
            .await
    }

    /// Creates a namespace with its contents.
    pub async fn create_namespace(
        &self,
        ctx: &Context,
        new: &NewNamespace,
    ) -> Result<FullNamespace, ApiError> {
        self.expect(ctx, Method::POST, "/v1/metadefs/namespaces", Some(new))
            .await
    }

    /// Replaces a namespace's attributes.
    pub async fn update_namespace(
        &self,
        ctx: &Context,
        ns: &str,
        input: &NamespaceInput,
    ) -> Result<Namespace, ApiError> {
        self.expect(ctx, Method::PUT, &Self::ns_path(ns, ""), Some(input))
            .await
    }

    /// Deletes a namespace (`""`), or all of its `"/properties"`, `"/objects"` or `"/tags"`.
    pub async fn delete_in_namespace(
        &self,
        ctx: &Context,
        ns: &str,
        what: &str,
    ) -> Result<(), ApiError> {
        self.no_content::<()>(ctx, Method::DELETE, &Self::ns_path(ns, what), None)
            .await
    }

    /// A namespace's properties.
    pub async fn list_metadef_properties(
        &self,
        ctx: &Context,
        ns: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, ApiError> {
        let list: PropertyList = self
            .expect::<(), _>(ctx, Method::GET, &Self::ns_path(ns, "/properties"), None)
            .await?;
        Ok(list.properties)
    }

    /// One property's definition (without its name).
    pub async fn get_metadef_property(
        &self,
        ctx: &Context,
        ns: &str,
        name: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let path = Self::ns_path(ns, &format!("/properties/{}", encode(name)));
        self.expect::<(), _>(ctx, Method::GET, &path, None).await
    }

    /// Adds a property (`def` carries its `name`).
    pub async fn create_metadef_property(
        &self,
        ctx: &Context,
        ns: &str,
        def: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        self.expect(
            ctx,
            Method::POST,
            &Self::ns_path(ns, "/properties"),
            Some(def),
        )
        .await
    }

    /// Replaces a property (`def`'s `name` renames it).
    pub async fn update_metadef_property(
        &self,
        ctx: &Context,
        ns: &str,
        name: &str,
        def: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let path = Self::ns_path(ns, &format!("/properties/{}", encode(name)));
        self.expect(ctx, Method::PUT, &path, Some(def)).await
    }

    /// Deletes one property, object or tag: `kind` is `properties`, `objects` or `tags`.
    pub async fn delete_metadef_item(
        &self,
        ctx: &Context,
        ns: &str,
        kind: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let path = Self::ns_path(ns, &format!("/{kind}/{}", encode(name)));
        self.no_content::<()>(ctx, Method::DELETE, &path, None)
            .await
    }

    /// A namespace's objects.
    pub async fn list_metadef_objects(
        &self,
        ctx: &Context,
        ns: &str,
    ) -> Result<Vec<Object>, ApiError> {
        let list: ObjectList = self
            .expect::<(), _>(ctx, Method::GET, &Self::ns_path(ns, "/objects"), None)
            .await?;
        Ok(list.objects)
    }

    /// One object.
    pub async fn get_metadef_object(
        &self,
        ctx: &Context,
        ns: &str,
        name: &str,
    ) -> Result<Object, ApiError> {
        let path = Self::ns_path(ns, &format!("/objects/{}", encode(name)));
        self.expect::<(), _>(ctx, Method::GET, &path, None).await
    }

    /// Adds an object.
    pub async fn create_metadef_object(
        &self,
        ctx: &Context,
        ns: &str,
        o: &ObjectInput,
    ) -> Result<Object, ApiError> {
        self.expect(ctx, Method::POST, &Self::ns_path(ns, "/objects"), Some(o))
            .await
    }

    /// Replaces an object (a new name renames it).
    pub async fn update_metadef_object(
        &self,
        ctx: &Context,
        ns: &str,
        name: &str,
        o: &ObjectInput,
    ) -> Result<Object, ApiError> {
        let path = Self::ns_path(ns, &format!("/objects/{}", encode(name)));
        self.expect(ctx, Method::PUT, &path, Some(o)).await
    }

    /// A namespace's tags.
    pub async fn list_metadef_tags(&self, ctx: &Context, ns: &str) -> Result<Vec<Tag>, ApiError> {
        let list: TagList = self
            .expect::<(), _>(ctx, Method::GET, &Self::ns_path(ns, "/tags"), None)
            .await?;
        Ok(list.tags)
    }

    /// Replaces (or with `append` adds to) a namespace's tags; answers the tags given.
    pub async fn set_metadef_tags(
        &self,
        ctx: &Context,
        ns: &str,
        input: &TagsInput,
    ) -> Result<Vec<Tag>, ApiError> {
        let list: TagList = self
            .expect(ctx, Method::POST, &Self::ns_path(ns, "/tags"), Some(input))
            .await?;
        Ok(list.tags)
    }

    /// One tag: `GET` shows it, `POST` creates it.
    pub async fn metadef_tag(
        &self,
        ctx: &Context,
        method: Method,
        ns: &str,
        name: &str,
    ) -> Result<Tag, ApiError> {
        let path = Self::ns_path(ns, &format!("/tags/{}", encode(name)));
        self.expect::<(), _>(ctx, method, &path, None).await
    }

    /// Renames a tag.
    pub async fn rename_metadef_tag(
        &self,
        ctx: &Context,
        ns: &str,
        name: &str,
        new_name: &str,
    ) -> Result<Tag, ApiError> {
        let path = Self::ns_path(ns, &format!("/tags/{}", encode(name)));
        let body = serde_json::json!({ "name": new_name });
        self.expect(ctx, Method::PUT, &path, Some(&body)).await
    }

    /// Every resource type.
    pub async fn list_resource_types(&self, ctx: &Context) -> Result<Vec<ResourceType>, ApiError> {
        let list: ResourceTypeList = self
            .expect::<(), _>(ctx, Method::GET, "/v1/metadefs/resource_types", None)
            .await?;
        Ok(list.resource_types)
    }

    /// A namespace's resource-type associations.
    pub async fn list_associations(
        &self,
        ctx: &Context,
        ns: &str,
    ) -> Result<Vec<Association>, ApiError> {
        let list: AssociationList = self
            .expect::<(), _>(
                ctx,
                Method::GET,
                &Self::ns_path(ns, "/resource_types"),
                None,
            )
            .await?;
        Ok(list.resource_type_associations)
    }

    /// Associates a namespace with a resource type.
    pub async fn create_association(
        &self,
        ctx: &Context,
        ns: &str,
        a: &AssociationInput,
    ) -> Result<Association, ApiError> {
        self.expect(
            ctx,
            Method::POST,
            &Self::ns_path(ns, "/resource_types"),
            Some(a),
        )
        .await
    }

    /// Removes an association.
    pub async fn delete_association(
        &self,
        ctx: &Context,
        ns: &str,
        rt: &str,
    ) -> Result<(), ApiError> {
        let path = Self::ns_path(ns, &format!("/resource_types/{}", encode(rt)));
        self.no_content::<()>(ctx, Method::DELETE, &path, None)
            .await
    }

    /// One page of images; `query` is the list query string as Glance's API takes it.
    pub async fn list_images(&self, ctx: &Context, query: &str) -> Result<Vec<Image>, ApiError> {
        let path = if query.is_empty() {
            "/v1/images".to_string()
        } else {
            format!("/v1/images?{query}")
        };
        let list: ImageList = self.expect::<(), _>(ctx, Method::GET, &path, None).await?;
        Ok(list.images)
    }

    /// One image the caller may see.
    pub async fn get_image(&self, ctx: &Context, id: &ImageId) -> Result<Image, ApiError> {
        self.expect::<(), _>(ctx, Method::GET, &format!("/v1/images/{id}"), None)
            .await
    }

    /// Creates an image; sent again if the answer is lost, so `new.id` should be set (the
    /// registry recognises a resend by the id; with none it would choose another).
    pub async fn create_image(&self, ctx: &Context, new: &NewImage) -> Result<Image, ApiError> {
        self.expect_replayable(ctx, Method::POST, "/v1/images", Some(new))
            .await
    }

    /// Updates an image (compare-and-swap when `from_state` is set).
    pub async fn update_image(
        &self,
        ctx: &Context,
        id: &ImageId,
        update: &ImageUpdate,
    ) -> Result<Image, ApiError> {
        self.expect(
            ctx,
            Method::PATCH,
            &format!("/v1/images/{id}"),
            Some(update),
        )
        .await
    }

    /// Soft-deletes an image (and its children).
    pub async fn delete_image(&self, ctx: &Context, id: &ImageId) -> Result<(), ApiError> {
        self.no_content::<()>(ctx, Method::DELETE, &format!("/v1/images/{id}"), None)
            .await
    }

    /// Adds a tag (idempotent).
    pub async fn add_tag(&self, ctx: &Context, id: &ImageId, tag: &str) -> Result<(), ApiError> {
        let path = format!("/v1/images/{id}/tags/{}", encode(tag));
        self.replayable::<(), serde_json::Value>(ctx, Method::PUT, &path, None)
            .await
            .map(|_| ())
    }

    /// Removes a tag (404 when absent).
    pub async fn delete_tag(&self, ctx: &Context, id: &ImageId, tag: &str) -> Result<(), ApiError> {
        let path = format!("/v1/images/{id}/tags/{}", encode(tag));
        self.replayable::<(), serde_json::Value>(ctx, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// The image's members the caller may see.
    pub async fn list_members(&self, ctx: &Context, id: &ImageId) -> Result<Vec<Member>, ApiError> {
        let list: MemberList = self
            .expect::<(), _>(ctx, Method::GET, &format!("/v1/images/{id}/members"), None)
            .await?;
        Ok(list.members)
    }

    /// Shares the image with a project.
    pub async fn add_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: &str,
    ) -> Result<Member, ApiError> {
        let body = NewMember {
            member: member.to_string(),
        };
        self.expect_replayable(
            ctx,
            Method::POST,
            &format!("/v1/images/{id}/members"),
            Some(&body),
        )
        .await
    }

    /// One membership.
    pub async fn get_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: &str,
    ) -> Result<Member, ApiError> {
        let path = format!("/v1/images/{id}/members/{}", encode(member));
        self.expect::<(), _>(ctx, Method::GET, &path, None).await
    }

    /// Sets a membership's status.
    pub async fn update_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: &str,
        update: &MemberUpdate,
    ) -> Result<Member, ApiError> {
        let path = format!("/v1/images/{id}/members/{}", encode(member));
        self.expect_replayable(ctx, Method::PUT, &path, Some(update))
            .await
    }

    /// Removes a membership.
    pub async fn delete_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: &str,
    ) -> Result<(), ApiError> {
        let path = format!("/v1/images/{id}/members/{}", encode(member));
        self.replayable::<(), serde_json::Value>(ctx, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// `queued → saving` and an upload lease for this node.
    pub async fn start_upload(
        &self,
        ctx: &Context,
        id: &ImageId,
        req: &LeaseRequest,
    ) -> Result<Lease, ApiError> {
        self.expect(
            ctx,
            Method::POST,
            &format!("/v1/images/{id}/upload"),
            Some(req),
        )
        .await
    }

    /// Renews an upload lease.
    pub async fn renew_upload(
        &self,
        ctx: &Context,
        id: &ImageId,
        token: &LeaseToken,
    ) -> Result<Lease, ApiError> {
        self.expect(
            ctx,
            Method::PUT,
            &format!("/v1/images/{id}/upload"),
            Some(token),
        )
        .await
    }

    /// Records the stored data and makes the image active.
    pub async fn complete_upload(
        &self,
        ctx: &Context,
        id: &ImageId,
        done: &UploadComplete,
    ) -> Result<Image, ApiError> {
        let path = format!("/v1/images/{id}/upload/complete");
        self.expect(ctx, Method::POST, &path, Some(done)).await
    }

    /// Edits an image's locations (add, remove, replace) under its row lock, where the
    /// registry also checks `image_location_quota`.
    pub async fn change_locations(
        &self,
        ctx: &Context,
        id: &ImageId,
        change: &glance_model::wire::LocationsChange,
    ) -> Result<Image, ApiError> {
        let path = format!("/v1/images/{id}/locations");
        self.expect(ctx, Method::POST, &path, Some(change)).await
    }

    /// Returns the image to `queued` after a failed upload.
    pub async fn abort_upload(
        &self,
        ctx: &Context,
        id: &ImageId,
        token: &LeaseToken,
    ) -> Result<Image, ApiError> {
        let path = format!("/v1/images/{id}/upload/abort");
        self.expect(ctx, Method::POST, &path, Some(token)).await
    }

    /// Returns an image whose upload lease expired to `queued`.
    pub async fn recover_upload(&self, ctx: &Context, id: &ImageId) -> Result<Image, ApiError> {
        let path = format!("/v1/images/{id}/upload/recover");
        self.expect::<(), _>(ctx, Method::POST, &path, None).await
    }

    /// Uploads whose node stopped renewing.
    pub async fn expired_leases(&self, ctx: &Context) -> Result<Vec<Lease>, ApiError> {
        let list: LeaseList = self
            .expect::<(), _>(ctx, Method::GET, "/v1/leases/expired", None)
            .await?;
        Ok(list.leases)
    }

    // ---- Interoperable import (issue 30) ----

    /// `queued → uploading` and a stage lease for this node.
    pub async fn start_stage(
        &self,
        ctx: &Context,
        id: &ImageId,
        req: &LeaseRequest,
    ) -> Result<Lease, ApiError> {
        let path = format!("/v1/images/{id}/stage");
        self.expect(ctx, Method::POST, &path, Some(req)).await
    }

    /// Records the staged size (the image stays `uploading`) and releases the stage lease.
    pub async fn complete_stage(
        &self,
        ctx: &Context,
        id: &ImageId,
        done: &glance_model::wire::StageComplete,
    ) -> Result<Image, ApiError> {
        let path = format!("/v1/images/{id}/stage/complete");
        self.expect(ctx, Method::POST, &path, Some(done)).await
    }

    /// Takes the import lock, moves the image to `importing`, and records the task.
    pub async fn start_import(
        &self,
        ctx: &Context,
        id: &ImageId,
        req: &glance_model::wire::ImportStart,
    ) -> Result<glance_model::wire::ImportStarted, ApiError> {
        let path = format!("/v1/images/{id}/import");
        self.expect(ctx, Method::POST, &path, Some(req)).await
    }

    /// Tasks the caller may see (`query`: the registry's `status`, `type`, `limit`,
    /// `sort_dir`).
    pub async fn list_tasks(
        &self,
        ctx: &Context,
        query: &[(&str, String)],
    ) -> Result<Vec<glance_model::wire::Task>, ApiError> {
        let qs = serde_urlencoded::to_string(query).unwrap_or_default();
        let path = if qs.is_empty() {
            "/v1/tasks".to_string()
        } else {
            format!("/v1/tasks?{qs}")
        };
        let list: glance_model::wire::TaskList =
            self.expect::<(), _>(ctx, Method::GET, &path, None).await?;
        Ok(list.tasks)
    }

    /// One task.
    pub async fn get_task(
        &self,
        ctx: &Context,
        id: &str,
    ) -> Result<glance_model::wire::Task, ApiError> {
        let path = format!("/v1/tasks/{}", encode(id));
        self.expect::<(), _>(ctx, Method::GET, &path, None).await
    }

    /// The tasks of an image.
    pub async fn image_tasks(
        &self,
        ctx: &Context,
        id: &ImageId,
    ) -> Result<Vec<glance_model::wire::Task>, ApiError> {
        let path = format!("/v1/images/{id}/tasks");
        let list: glance_model::wire::TaskList =
            self.expect::<(), _>(ctx, Method::GET, &path, None).await?;
        Ok(list.tasks)
    }

    /// Bytes of image data the caller's project stores.
    pub async fn storage_used(&self, ctx: &Context) -> Result<u64, ApiError> {
        Ok(self.usage(ctx).await?.size_bytes)
    }

    /// What the caller's project stores, uploads and stages.
    pub async fn usage(&self, ctx: &Context) -> Result<Usage, ApiError> {
        self.expect::<(), _>(ctx, Method::GET, "/v1/usage", None)
            .await
    }

    /// Whether the registry serves a caller that brings no credentials (no token, no shared
    /// secret, no identity): asks for an image that cannot exist, which a registry that
    /// authenticates refuses (401/403) before looking. `Err` when it cannot be reached.
    pub async fn answers_without_credentials(&self) -> Result<bool, String> {
        let resp = self
            .http
            .get(format!(
                "{}/v1/images/00000000-0000-0000-0000-000000000000",
                self.base
            ))
            .send()
            .await
            .map_err(|e| format!("registry unreachable: {}", crate::error::chain(&e)))?;
        Ok(!matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ))
    }

    /// Whether the registry (and its database) answers its health check, within
    /// [`HEALTH_WITHIN`] (a registry that does not answer by then is reported unreachable).
    pub async fn healthy(&self) -> RegistryHealth {
        let resp = match self
            .http
            .get(format!("{}/healthcheck", self.base))
            .timeout(HEALTH_WITHIN)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return RegistryHealth {
                    registry: Err(format!("registry unreachable: {e}")),
                    database: Err("unknown: the registry is unreachable".to_string()),
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return RegistryHealth {
                registry: Ok(()),
                database: Ok(()),
            };
        }
        let body = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            RegistryHealth {
                registry: Ok(()),
                database: Err(body.trim().to_string()),
            }
        } else {
            RegistryHealth {
                registry: Err(format!("registry answered {status}: {}", body.trim())),
                database: Err("unknown: the registry is unhealthy".to_string()),
            }
        }
    }
}

/// What the registry's health check said: is it reachable, and can it reach its database.
#[derive(Debug, Clone)]
pub struct RegistryHealth {
    /// The registry answered.
    pub registry: Result<(), String>,
    /// The registry reached its database.
    pub database: Result<(), String>,
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[derive(serde::Deserialize)]
struct NamespaceList {
    namespaces: Vec<ListedNamespace>,
}

#[derive(serde::Deserialize)]
struct PropertyList {
    properties: BTreeMap<String, serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct ObjectList {
    objects: Vec<Object>,
}

#[derive(serde::Deserialize)]
struct TagList {
    tags: Vec<Tag>,
}

#[derive(serde::Deserialize)]
struct ResourceTypeList {
    resource_types: Vec<ResourceType>,
}

#[derive(serde::Deserialize)]
struct AssociationList {
    resource_type_associations: Vec<Association>,
}
