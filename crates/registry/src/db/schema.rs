//! Diesel's view of the tables: Glance's own table and column names and portable types
//! (text ids, `BigInt` sizes, `Bool` flags, UTC `Timestamp`s), plus our upload-lease table.
//! Hand-maintained; `migrations/*/` create exactly these columns.

diesel::table! {
    images (id) {
        id -> Text,
        name -> Nullable<Text>,
        size -> Nullable<BigInt>,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        deleted_at -> Nullable<Timestamp>,
        deleted -> Bool,
        disk_format -> Nullable<Text>,
        container_format -> Nullable<Text>,
        checksum -> Nullable<Text>,
        owner -> Nullable<Text>,
        min_disk -> Integer,
        min_ram -> Integer,
        protected -> Bool,
        virtual_size -> Nullable<BigInt>,
        visibility -> Text,
        os_hidden -> Bool,
        os_hash_algo -> Nullable<Text>,
        os_hash_value -> Nullable<Text>,
    }
}

diesel::table! {
    image_properties (id) {
        id -> Integer,
        image_id -> Text,
        name -> Text,
        value -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        deleted_at -> Nullable<Timestamp>,
        deleted -> Bool,
    }
}

diesel::table! {
    image_tags (id) {
        id -> Integer,
        image_id -> Text,
        value -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        deleted_at -> Nullable<Timestamp>,
        deleted -> Bool,
    }
}

diesel::table! {
    image_locations (id) {
        id -> Integer,
        image_id -> Text,
        value -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        deleted_at -> Nullable<Timestamp>,
        deleted -> Bool,
        meta_data -> Nullable<Text>,
        status -> Text,
    }
}

diesel::table! {
    image_members (id) {
        id -> Integer,
        image_id -> Text,
        member -> Text,
        can_share -> Bool,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        deleted_at -> Nullable<Timestamp>,
        deleted -> Bool,
        status -> Text,
    }
}

diesel::table! {
    tasks (id) {
        id -> Text,
        #[sql_name = "type"]
        task_type -> Text,
        status -> Text,
        owner -> Text,
        expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        deleted_at -> Nullable<Timestamp>,
        deleted -> Bool,
        image_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
    }
}

diesel::table! {
    task_info (task_id) {
        task_id -> Text,
        input -> Nullable<Text>,
        result -> Nullable<Text>,
        message -> Nullable<Text>,
    }
}

diesel::table! {
    /// Ours, not Glance's: who is uploading an image and until when (see `db::leases`).
    glance_upload_leases (image_id) {
        image_id -> Text,
        node -> Text,
        token -> Text,
        expires_at -> Timestamp,
        heartbeat_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Ours, not Glance's: one change counter per stripe of image ids (see `db::generations`).
    glance_record_generations (stripe) {
        stripe -> Integer,
        generation -> BigInt,
    }
}

diesel::table! {
    metadef_namespaces (id) {
        id -> Integer,
        namespace -> Text,
        display_name -> Nullable<Text>,
        description -> Nullable<Text>,
        visibility -> Nullable<Text>,
        protected -> Nullable<Bool>,
        owner -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    metadef_resource_types (id) {
        id -> Integer,
        name -> Text,
        protected -> Bool,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    metadef_objects (id) {
        id -> Integer,
        namespace_id -> Integer,
        name -> Text,
        description -> Nullable<Text>,
        required -> Nullable<Text>,
        json_schema -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    metadef_properties (id) {
        id -> Integer,
        namespace_id -> Integer,
        name -> Text,
        json_schema -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    metadef_tags (id) {
        id -> Integer,
        namespace_id -> Integer,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    metadef_namespace_resource_types (resource_type_id, namespace_id) {
        resource_type_id -> Integer,
        namespace_id -> Integer,
        properties_target -> Nullable<Text>,
        prefix -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(image_properties -> images (image_id));
diesel::joinable!(image_tags -> images (image_id));
diesel::joinable!(image_locations -> images (image_id));
diesel::joinable!(image_members -> images (image_id));
diesel::joinable!(task_info -> tasks (task_id));
diesel::joinable!(metadef_objects -> metadef_namespaces (namespace_id));
diesel::joinable!(metadef_properties -> metadef_namespaces (namespace_id));
diesel::joinable!(metadef_tags -> metadef_namespaces (namespace_id));
diesel::joinable!(metadef_namespace_resource_types -> metadef_namespaces (namespace_id));
diesel::joinable!(metadef_namespace_resource_types -> metadef_resource_types (resource_type_id));

diesel::allow_tables_to_appear_in_same_query!(
    images,
    image_properties,
    image_tags,
    image_locations,
    image_members,
    tasks,
    task_info,
    glance_upload_leases,
    glance_record_generations,
    metadef_namespaces,
    metadef_resource_types,
    metadef_objects,
    metadef_properties,
    metadef_tags,
    metadef_namespace_resource_types,
);
