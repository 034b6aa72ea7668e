//! Who may see an image has one home, `glance_model::visibility::may_see`. The registry's
//! SQL form of it (a list's condition, `db/page.rs`) and its show path are checked against
//! that function on every backend, for every visibility × the member project's membership
//! status × caller role.

use std::collections::BTreeSet;

use anyhow::Result;
use diesel::connection::SimpleConnection;
use glance_model::visibility::may_see;
use glance_model::{Context, MemberStatus, Visibility};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends};

const VISIBILITIES: [Visibility; 4] = Visibility::ALL;

const MEMBERSHIPS: [Option<MemberStatus>; 4] = MemberStatus::OR_NONE;

/// The owner of every image, and the project that is (or is not) a member of each.
const OWNER: &str = "owner-p";
const MEMBER: &str = "member-m";

/// A caller: its name, the project and roles it sends, and the context the registry makes.
struct Role {
    name: &'static str,
    project: &'static str,
    roles: &'static str,
}

const ROLES: [Role; 5] = [
    Role {
        name: "admin",
        project: "admin-x",
        roles: "admin",
    },
    Role {
        name: "owner",
        project: OWNER,
        roles: "member",
    },
    Role {
        name: "member project",
        project: MEMBER,
        roles: "member",
    },
    Role {
        name: "other project",
        project: "other-o",
        roles: "member",
    },
    Role {
        name: "no project",
        project: "",
        roles: "",
    },
];

impl Role {
    fn context(&self) -> Context {
        let mut ctx = if self.project.is_empty() {
            Context::default()
        } else {
            Context::project(self.project, &[self.roles])
        };
        ctx.is_admin = self.roles == "admin";
        ctx
    }
}

/// One image of the matrix.
struct Case {
    id: String,
    visibility: Visibility,
    membership: Option<MemberStatus>,
}

#[actix_web::test]
async fn the_sql_form_and_the_show_path_agree_with_may_see() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let mut cases = Vec::new();
        for visibility in VISIBILITIES {
            for membership in MEMBERSHIPS {
                let img = r
                    .create(
                        OWNER,
                        json!({"name": format!("{visibility}-{membership:?}"),
                               "visibility": visibility.as_str()}),
                    )
                    .await?;
                let id = img["id"].as_str().unwrap_or_default().to_string();
                if let Some(status) = membership {
                    // By hand, so that every visibility has members (a Glance database
                    // keeps them when an image stops being shared).
                    r.db.conn()?.batch_execute(&format!(
                        "INSERT INTO image_members (image_id, member, can_share, status, \
                         created_at, updated_at, deleted) VALUES ('{id}', '{MEMBER}', false, \
                         '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', false)",
                        status.as_str()
                    ))?;
                }
                cases.push(Case {
                    id,
                    visibility,
                    membership,
                });
            }
        }
        for role in &ROLES {
            let ctx = role.context();
            let res = r
                .req(
                    Method::GET,
                    "/v1/images?visibility=all&member_status=all&limit=100",
                    role.project,
                    role.roles,
                )
                .send()
                .await?;
            anyhow::ensure!(
                res.status() == 200,
                "{b}, {}: list {}",
                role.name,
                res.status()
            );
            let page: Value = res.json().await?;
            let listed: BTreeSet<String> = page["images"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect();
            for case in &cases {
                // Only the member project has a membership.
                let membership = case.membership.filter(|_| role.project == MEMBER);
                let want = may_see(&ctx, Some(OWNER), case.visibility, membership);
                let what = format!(
                    "{b}: {} and a {} image, membership {:?}",
                    role.name, case.visibility, case.membership
                );
                assert_eq!(listed.contains(&case.id), want, "{what}: the list");
                let shown = r
                    .req(
                        Method::GET,
                        &format!("/v1/images/{}", case.id),
                        role.project,
                        role.roles,
                    )
                    .send()
                    .await?
                    .status()
                    .as_u16();
                assert_eq!(shown, if want { 200 } else { 404 }, "{what}: a show");
            }
        }
        r.stop().await;
    }
    Ok(())
}
