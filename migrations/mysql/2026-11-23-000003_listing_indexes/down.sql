DROP INDEX ix_image_members_member_status ON image_members;
DROP INDEX ix_image_tags_value ON image_tags;
DROP INDEX ix_image_properties_name_value ON image_properties;
DROP INDEX ix_images_created_at_id ON images;
