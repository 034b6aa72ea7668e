-- Per-image lookups of live rows (image_id, deleted): without them SQLite's planner, having no
-- statistics, prefers the single-column deleted indexes of Glance's schema and scans every
-- property row on each image show. And the default listing order of live, unhidden images.
CREATE INDEX ix_image_properties_image_id_deleted ON image_properties (image_id, deleted);
CREATE INDEX ix_image_locations_image_id_deleted ON image_locations (image_id, deleted);
CREATE INDEX ix_image_tags_image_id_deleted ON image_tags (image_id, deleted);
CREATE INDEX ix_images_deleted_hidden_created_id ON images (deleted, os_hidden, created_at, id);
