DROP INDEX ix_image_members_member_status;
DROP INDEX ix_image_tags_value;
DROP INDEX ix_image_properties_name_value;
DROP INDEX ix_images_created_at_id;
