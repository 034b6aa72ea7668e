-- Indexes that keep image listing fast (not in Glance's schema; harmless to it):
-- the default order (created_at, id), property and tag filters, and membership lookups.
CREATE INDEX ix_images_created_at_id ON images (created_at, id);
CREATE INDEX ix_image_properties_name_value ON image_properties (name, value(255));
CREATE INDEX ix_image_tags_value ON image_tags (value);
CREATE INDEX ix_image_members_member_status ON image_members (member, status);
