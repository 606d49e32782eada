//! Names of the native door's error statuses, for `wharf_request_errors_total{door="native",
//! api,error}`: Iggy's error names (its `IggyError` variants in snake_case, as Iggy prints
//! them) of the statuses this server answers with, a fixed table so the `error` label is
//! bounded whatever happens; a status outside it counts as `other`.

use wharf_protocol::status as code;

/// Iggy statuses with their names; the last row (`other`) takes every status not listed.
pub const NATIVE_ERRORS: &[(u32, &str)] = &[
    (code::ERROR, "error"),
    (code::INVALID_CONFIGURATION, "invalid_configuration"),
    (code::INVALID_COMMAND, "invalid_command"),
    (code::INVALID_FORMAT, "invalid_format"),
    (code::FEATURE_UNAVAILABLE, "feature_unavailable"),
    (code::INVALID_IDENTIFIER, "invalid_identifier"),
    (code::RESOURCE_NOT_FOUND, "resource_not_found"),
    (code::UNAUTHENTICATED, "unauthenticated"),
    (code::UNAUTHORIZED, "unauthorized"),
    (code::INVALID_CREDENTIALS, "invalid_credentials"),
    (code::INVALID_USERNAME, "invalid_username"),
    (code::INVALID_PASSWORD, "invalid_password"),
    (code::INVALID_USER_STATUS, "invalid_user_status"),
    (code::USER_ALREADY_EXISTS, "user_already_exists"),
    (code::USER_INACTIVE, "user_inactive"),
    (code::CANNOT_DELETE_USER, "cannot_delete_user"),
    (code::CANNOT_CHANGE_PERMISSIONS, "cannot_change_permissions"),
    (code::INVALID_PAT_NAME, "invalid_personal_access_token_name"),
    (
        code::PAT_ALREADY_EXISTS,
        "personal_access_token_already_exists",
    ),
    (
        code::PATS_LIMIT_REACHED,
        "personal_access_tokens_limit_reached",
    ),
    (code::INVALID_PAT, "invalid_personal_access_token"),
    (code::PAT_EXPIRED, "personal_access_token_expired"),
    (code::INVALID_UTF8, "invalid_utf8"),
    (code::CLIENT_NOT_FOUND, "client_not_found"),
    (code::STREAM_ID_NOT_FOUND, "stream_id_not_found"),
    (code::STREAM_NAME_NOT_FOUND, "stream_name_not_found"),
    (
        code::STREAM_NAME_ALREADY_EXISTS,
        "stream_name_already_exists",
    ),
    (code::INVALID_STREAM_NAME, "invalid_stream_name"),
    (code::INVALID_TOPIC_SIZE, "invalid_topic_size"),
    (code::TOPIC_ID_NOT_FOUND, "topic_id_not_found"),
    (code::TOPIC_NAME_NOT_FOUND, "topic_name_not_found"),
    (code::TOPIC_NAME_ALREADY_EXISTS, "topic_name_already_exists"),
    (code::INVALID_TOPIC_NAME, "invalid_topic_name"),
    (code::TOO_MANY_PARTITIONS, "too_many_partitions"),
    (
        code::INVALID_REPLICATION_FACTOR,
        "invalid_replication_factor",
    ),
    (code::INVALID_PARTITIONS_COUNT, "invalid_partitions_count"),
    (code::PARTITION_NOT_FOUND, "partition_not_found"),
    (code::NO_PARTITIONS, "no_partitions"),
    (code::CONSUMER_OFFSET_NOT_FOUND, "consumer_offset_not_found"),
    (code::INVALID_MESSAGES_COUNT, "invalid_messages_count"),
    (code::TOO_BIG_USER_HEADERS, "too_big_user_headers"),
    (code::TOO_BIG_MESSAGE_PAYLOAD, "too_big_message_payload"),
    (code::TOO_MANY_MESSAGES, "too_many_messages"),
    (code::EMPTY_MESSAGE_PAYLOAD, "empty_message_payload"),
    (code::INVALID_MESSAGE_CHECKSUM, "invalid_message_checksum"),
    (code::INVALID_SEGMENTS_COUNT, "invalid_segments_count"),
    (code::INVALID_INDEXES_COUNT, "invalid_indexes_count"),
    (code::INVALID_MESSAGES_SIZE, "invalid_messages_size"),
    (code::INVALID_HEADER_KIND, "invalid_header_kind"),
    (code::INVALID_OFFSET, "invalid_offset"),
    (code::INVALID_RESERVED_FIELD, "invalid_reserved_field"),
    (
        code::CONSUMER_GROUP_ID_NOT_FOUND,
        "consumer_group_id_not_found",
    ),
    (
        code::CONSUMER_GROUP_NAME_NOT_FOUND,
        "consumer_group_name_not_found",
    ),
    (
        code::CONSUMER_GROUP_NAME_ALREADY_EXISTS,
        "consumer_group_name_already_exists",
    ),
    (
        code::INVALID_CONSUMER_GROUP_NAME,
        "invalid_consumer_group_name",
    ),
    (
        code::CONSUMER_GROUP_MEMBER_NOT_FOUND,
        "consumer_group_member_not_found",
    ),
    (code::CANNOT_WRITE_TO_FILE, "cannot_write_to_file"),
    (code::IO_ERROR, "io_error"),
    (
        crate::native::errors::INVALID_HEADER_KEY,
        "invalid_header_key",
    ),
    (u32::MAX, "other"),
];

/// The slot of `status` in [`NATIVE_ERRORS`]: a search of a short table, done only for an
/// answer that is an error while metrics are on.
pub fn slot(status: u32) -> usize {
    NATIVE_ERRORS[..NATIVE_ERRORS.len() - 1]
        .iter()
        .position(|&(c, _)| c == status)
        .unwrap_or(NATIVE_ERRORS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bound: at most `NATIVE_ERRORS.len()` label values, whatever status is answered.
    #[test]
    fn statuses_find_their_iggy_name_and_others_are_other() {
        assert_eq!(
            NATIVE_ERRORS[slot(code::UNAUTHENTICATED)].1,
            "unauthenticated"
        );
        assert_eq!(
            NATIVE_ERRORS[slot(code::TOPIC_ID_NOT_FOUND)].1,
            "topic_id_not_found"
        );
        assert_eq!(NATIVE_ERRORS[slot(4018)].1, "invalid_header_key");
        assert_eq!(NATIVE_ERRORS[slot(987_654)].1, "other");
        assert_eq!(NATIVE_ERRORS[slot(u32::MAX)].1, "other");
        // Iggy's own snake_case names (iggy_common's IggyError) for the personal access
        // token statuses, not abbreviations.
        for (status, name) in [
            (code::INVALID_PAT_NAME, "invalid_personal_access_token_name"),
            (
                code::PAT_ALREADY_EXISTS,
                "personal_access_token_already_exists",
            ),
            (
                code::PATS_LIMIT_REACHED,
                "personal_access_tokens_limit_reached",
            ),
            (code::INVALID_PAT, "invalid_personal_access_token"),
            (code::PAT_EXPIRED, "personal_access_token_expired"),
        ] {
            assert_eq!(NATIVE_ERRORS[slot(status)].1, name, "status {status}");
        }
        let mut codes: Vec<u32> = NATIVE_ERRORS.iter().map(|&(c, _)| c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), NATIVE_ERRORS.len(), "one row per status");
    }
}
