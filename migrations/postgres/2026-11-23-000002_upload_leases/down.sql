DROP TABLE glance_upload_leases;
