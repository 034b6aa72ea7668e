-- Ours, not Glance's: the node uploading an image holds a lease it renews, so an image left
-- in 'saving' by a process that died can be found (expires_at in the past) and recovered.
-- No foreign key: an adopted Glance database on MySQL has utf8mb3 ids, and a key across
-- character sets is refused; the registry removes a lease whenever its image goes.
CREATE TABLE glance_upload_leases (
    image_id VARCHAR(36) NOT NULL,
    node VARCHAR(255) NOT NULL,
    token VARCHAR(36) NOT NULL,
    expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    heartbeat_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (image_id)
);
CREATE INDEX ix_glance_upload_leases_expires_at ON glance_upload_leases (expires_at);
