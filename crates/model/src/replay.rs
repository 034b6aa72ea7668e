//! Replays of registry writes. glance-api sends a write again when the registry's answer was
//! lost (the connection dropped after the request went out: the registry may have committed
//! it, or not). Such a resend carries [`crate::wire::HEADER_REPLAY`], and the registry answers
//! it as it answered the first sending when the first one did commit: the image that create
//! made, the membership that add made, no 404 for a removal already made. A client's own
//! duplicate request (no header) is still refused as Glance refuses it (409 for an image id
//! or a member that exists). This module says only whether a stored image is what a create
//! made; it does no I/O.

use crate::image::Image;
use crate::status::ImageStatus;
use crate::wire::NewImage;

/// Whether `image` is exactly what creating `new` made for a caller of project `project`
/// and is untouched since: same id, same fields, tags and properties, same owner, still
/// `queued`. A resent create is answered with `image` only then; otherwise the id is taken
/// by something else and the create is refused (409).
pub fn is_created_by(image: &Image, new: &NewImage, project: Option<&str>) -> bool {
    let owner = new.owner.as_deref().or(project);
    let mut tags: Vec<&str> = new.tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    tags.dedup();
    new.id.is_none_or(|id| id == image.id)
        && !image.deleted
        && image.status == ImageStatus::Queued
        && image.owner.as_deref() == owner
        && image.name == new.name
        && image.visibility == new.visibility.unwrap_or_default()
        && image.protected == new.protected
        && image.os_hidden == new.os_hidden
        && image.container_format == new.container_format
        && image.disk_format == new.disk_format
        && image.min_disk == new.min_disk
        && image.min_ram == new.min_ram
        && image.tags.iter().map(String::as_str).eq(tags)
        && image.properties == new.properties
        && image.locations.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageId;
    use crate::visibility::Visibility;

    fn created(new: &NewImage, project: &str) -> Image {
        let mut tags = new.tags.clone();
        tags.sort();
        tags.dedup();
        Image {
            id: new.id.unwrap_or_default(),
            name: new.name.clone(),
            status: ImageStatus::Queued,
            visibility: new.visibility.unwrap_or_default(),
            protected: new.protected,
            os_hidden: new.os_hidden,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner: new.owner.clone().or_else(|| Some(project.to_string())),
            size: None,
            virtual_size: None,
            container_format: new.container_format.clone(),
            disk_format: new.disk_format.clone(),
            min_disk: new.min_disk,
            min_ram: new.min_ram,
            created_at: crate::time::now(),
            updated_at: None,
            deleted_at: None,
            deleted: false,
            tags,
            properties: new.properties.clone(),
            locations: Vec::new(),
        }
    }

    fn new() -> NewImage {
        NewImage {
            id: Some(ImageId::new()),
            name: Some("cirros".to_string()),
            disk_format: Some("qcow2".to_string()),
            tags: vec!["b".to_string(), "a".to_string(), "b".to_string()],
            properties: [("os_distro".to_string(), "cirros".to_string())].into(),
            ..NewImage::default()
        }
    }

    /// The image a create made is recognised, tags in any order and repeated.
    #[test]
    fn the_image_a_create_made_is_recognised() {
        let n = new();
        let image = created(&n, "p1");
        assert!(is_created_by(&image, &n, Some("p1")));
    }

    /// Any difference (another caller, another field, a later change) is not a replay.
    #[test]
    fn anything_else_is_not_a_replay() {
        let n = new();
        let image = created(&n, "p1");
        assert!(!is_created_by(&image, &n, Some("p2")), "other project");
        let mut other = n.clone();
        other.name = Some("other".to_string());
        assert!(!is_created_by(&image, &other, Some("p1")), "other name");
        let mut other = n.clone();
        other.visibility = Some(Visibility::Public);
        assert!(!is_created_by(&image, &other, Some("p1")), "visibility");
        let mut other = n.clone();
        other.properties.insert("k".to_string(), "v".to_string());
        assert!(!is_created_by(&image, &other, Some("p1")), "properties");
        let mut other = n.clone();
        other.tags.push("c".to_string());
        assert!(!is_created_by(&image, &other, Some("p1")), "tags");
        let mut other = n.clone();
        other.id = Some(ImageId::new());
        assert!(!is_created_by(&image, &other, Some("p1")), "id");
        let mut changed = image.clone();
        changed.status = ImageStatus::Saving;
        assert!(!is_created_by(&changed, &n, Some("p1")), "upload begun");
        let mut changed = image;
        changed.deleted = true;
        assert!(!is_created_by(&changed, &n, Some("p1")), "deleted");
    }
}
