CREATE INDEX ix_image_tags_image_id_deleted ON image_tags (image_id, deleted);
DROP INDEX ix_image_tags_image_id_deleted_value;
CREATE INDEX ix_image_properties_image_id_deleted ON image_properties (image_id, deleted);
DROP INDEX ix_image_properties_image_id_deleted_name_value;
