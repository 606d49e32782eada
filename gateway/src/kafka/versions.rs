//! Which Kafka API versions this door advertises and accepts.
//!
//! Only what is implemented is advertised (kafka.md section 8). Produce 12 is advertised but
//! transactions v2 (KIP-890 part 2) is not: clients use it only when ApiVersions finalizes the
//! `transaction.version` feature, which it never does. Produce is
//! advertised from v0, as Kafka 4 does, because librdkafka before 2.11.1 only compresses when
//! Produce v0 is in range; versions 0-2 (the old message sets) are refused when they arrive.

/// `(api key, lowest advertised, highest)`.
pub const ADVERTISED: &[(i16, i16, i16)] = &[
    (PRODUCE, 0, 13),
    (FETCH, 4, 18),
    // v8/v9: the earliest-local (-4) and latest-tiered (-5) look-ups of KIP-1005; v10:
    // timeout_ms for look-ups that read the remote tier.
    (LIST_OFFSETS, 1, 10),
    (METADATA, 0, 13),
    (OFFSET_COMMIT, 2, 9),
    (OFFSET_FETCH, 1, 9),
    (FIND_COORDINATOR, 0, 3),
    (JOIN_GROUP, 0, 9),
    (HEARTBEAT, 0, 4),
    (LEAVE_GROUP, 0, 5),
    (SYNC_GROUP, 0, 5),
    (DESCRIBE_GROUPS, 0, 6),
    (LIST_GROUPS, 0, 5),
    (API_VERSIONS, 0, 4),
    (CREATE_TOPICS, 2, 7),
    (DELETE_TOPICS, 1, 5),
    (DELETE_RECORDS, 0, 2),
    (INIT_PRODUCER_ID, 0, 4),
    // Transactions v1 (not v2/KIP-890 part 2: no AddPartitionsToTxn v5, EndTxn v5,
    // TxnOffsetCommit v5). AddPartitionsToTxn v4 is the brokers' batched form, not served.
    (ADD_PARTITIONS_TO_TXN, 0, 3),
    (ADD_OFFSETS_TO_TXN, 0, 4),
    (END_TXN, 0, 4),
    (TXN_OFFSET_COMMIT, 0, 4),
    (DESCRIBE_TRANSACTIONS, 0, 0),
    (LIST_TRANSACTIONS, 0, 1),
    (DESCRIBE_ACLS, 1, 3),
    (CREATE_ACLS, 1, 3),
    (DELETE_ACLS, 1, 3),
    (DESCRIBE_CONFIGS, 1, 4),
    (ALTER_CONFIGS, 0, 2),
    (CREATE_PARTITIONS, 0, 3),
    (DELETE_GROUPS, 0, 2),
    (INCREMENTAL_ALTER_CONFIGS, 0, 1),
    (OFFSET_DELETE, 0, 0),
    (DESCRIBE_CLUSTER, 0, 2),
    (DESCRIBE_TOPIC_PARTITIONS, 0, 0),
    // From v1 only: v0 exchanges raw SASL tokens outside Kafka framing; clients use v1 with
    // SaslAuthenticate whenever the broker advertises it.
    (SASL_HANDSHAKE, 1, 1),
    (SASL_AUTHENTICATE, 0, 2),
    (DESCRIBE_USER_SCRAM_CREDENTIALS, 0, 0),
    (ALTER_USER_SCRAM_CREDENTIALS, 0, 0),
    // ---- admin ----
    (DESCRIBE_LOG_DIRS, 1, 4),
    (ALTER_REPLICA_LOG_DIRS, 1, 2),
    (ELECT_LEADERS, 0, 2),
    (LIST_PARTITION_REASSIGNMENTS, 0, 0),
    (ALTER_PARTITION_REASSIGNMENTS, 0, 1),
    (DESCRIBE_QUORUM, 0, 2),
    (LIST_CONFIG_RESOURCES, 0, 1),
    (DESCRIBE_PRODUCERS, 0, 0),
    // quotas
    (DESCRIBE_CLIENT_QUOTAS, 0, 1),
    (ALTER_CLIENT_QUOTAS, 0, 1),
    // ---- kip848 ----
    (CONSUMER_GROUP_HEARTBEAT, 0, 1),
    (CONSUMER_GROUP_DESCRIBE, 0, 1),
];

pub const PRODUCE: i16 = 0;
pub const FETCH: i16 = 1;
pub const LIST_OFFSETS: i16 = 2;
pub const METADATA: i16 = 3;
pub const OFFSET_COMMIT: i16 = 8;
pub const OFFSET_FETCH: i16 = 9;
pub const FIND_COORDINATOR: i16 = 10;
pub const JOIN_GROUP: i16 = 11;
pub const HEARTBEAT: i16 = 12;
pub const LEAVE_GROUP: i16 = 13;
pub const SYNC_GROUP: i16 = 14;
pub const DESCRIBE_GROUPS: i16 = 15;
pub const LIST_GROUPS: i16 = 16;
pub const API_VERSIONS: i16 = 18;
pub const CREATE_TOPICS: i16 = 19;
pub const DELETE_TOPICS: i16 = 20;
pub const DELETE_RECORDS: i16 = 21;
pub const INIT_PRODUCER_ID: i16 = 22;
pub const ADD_PARTITIONS_TO_TXN: i16 = 24;
pub const ADD_OFFSETS_TO_TXN: i16 = 25;
pub const END_TXN: i16 = 26;
pub const TXN_OFFSET_COMMIT: i16 = 28;
pub const DESCRIBE_TRANSACTIONS: i16 = 65;
pub const LIST_TRANSACTIONS: i16 = 66;
pub const DESCRIBE_ACLS: i16 = 29;
pub const CREATE_ACLS: i16 = 30;
pub const DELETE_ACLS: i16 = 31;
pub const DESCRIBE_CONFIGS: i16 = 32;
pub const ALTER_CONFIGS: i16 = 33;
pub const CREATE_PARTITIONS: i16 = 37;
pub const DELETE_GROUPS: i16 = 42;
pub const INCREMENTAL_ALTER_CONFIGS: i16 = 44;
pub const OFFSET_DELETE: i16 = 47;
pub const DESCRIBE_CLUSTER: i16 = 60;
pub const SASL_HANDSHAKE: i16 = 17;
pub const SASL_AUTHENTICATE: i16 = 36;
pub const DESCRIBE_USER_SCRAM_CREDENTIALS: i16 = 50;
pub const ALTER_USER_SCRAM_CREDENTIALS: i16 = 51;
pub const DESCRIBE_LOG_DIRS: i16 = 35;
pub const ALTER_REPLICA_LOG_DIRS: i16 = 34;
pub const ELECT_LEADERS: i16 = 43;
pub const ALTER_PARTITION_REASSIGNMENTS: i16 = 45;
pub const LIST_PARTITION_REASSIGNMENTS: i16 = 46;
pub const DESCRIBE_CLIENT_QUOTAS: i16 = 48;
pub const ALTER_CLIENT_QUOTAS: i16 = 49;
pub const DESCRIBE_QUORUM: i16 = 55;
pub const DESCRIBE_PRODUCERS: i16 = 61;
pub const CONSUMER_GROUP_HEARTBEAT: i16 = 68;
pub const CONSUMER_GROUP_DESCRIBE: i16 = 69;
pub const DESCRIBE_TOPIC_PARTITIONS: i16 = 75;
pub const LIST_CONFIG_RESOURCES: i16 = 74;

/// Lowest Produce version actually served: v3 brought record batch v2.
pub const PRODUCE_MIN_ACCEPTED: i16 = 3;

/// The advertised range of `api_key`, if any.
pub fn range(api_key: i16) -> Option<(i16, i16)> {
    ADVERTISED
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// True when a request of this key and version is served.
pub fn accepted(api_key: i16, version: i16) -> bool {
    match range(api_key) {
        Some((lo, hi)) => {
            let lo = if api_key == PRODUCE {
                PRODUCE_MIN_ACCEPTED
            } else {
                lo
            };
            (lo..=hi).contains(&version)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn every_advertised_version_is_decodable_and_the_guard_knows_it() {
        for &(key, lo, hi) in ADVERTISED {
            let api = ApiKey::try_from(key).unwrap();
            let valid = api.valid_versions();
            assert!(hi <= valid.max, "{api:?} {hi}");
            for v in lo..=hi {
                if accepted(key, v) {
                    assert!(v >= valid.min, "{api:?} v{v} is not decodable");
                    assert!(super::super::guard::is_known(key, v), "{api:?} v{v}");
                }
            }
        }
        assert!(!accepted(PRODUCE, 2));
        assert!(accepted(PRODUCE, 3));
        assert!(accepted(FETCH, 13) && accepted(FETCH, 18) && !accepted(FETCH, 19));
    }
}
