//! The request kinds the request series are labelled with (`api`): Kafka's API names for the
//! Kafka door, Iggy's command names (in the same CamelCase) for the native door. A fixed table
//! each, so the label set is bounded whatever clients send (anything else is `Unknown`) and a
//! request's counters are found by index, without a map.

/// The `api` label of what no table names (an unsupported Kafka API, an unknown command).
pub const UNKNOWN: &str = "Unknown";

/// Kafka API keys this server answers, by key, with Kafka's names for them.
pub const KAFKA_APIS: &[(i16, &str)] = &[
    (0, "Produce"),
    (1, "Fetch"),
    (2, "ListOffsets"),
    (3, "Metadata"),
    (8, "OffsetCommit"),
    (9, "OffsetFetch"),
    (10, "FindCoordinator"),
    (11, "JoinGroup"),
    (12, "Heartbeat"),
    (13, "LeaveGroup"),
    (14, "SyncGroup"),
    (15, "DescribeGroups"),
    (16, "ListGroups"),
    (17, "SaslHandshake"),
    (18, "ApiVersions"),
    (19, "CreateTopics"),
    (20, "DeleteTopics"),
    (21, "DeleteRecords"),
    (22, "InitProducerId"),
    (24, "AddPartitionsToTxn"),
    (25, "AddOffsetsToTxn"),
    (26, "EndTxn"),
    (28, "TxnOffsetCommit"),
    (29, "DescribeAcls"),
    (30, "CreateAcls"),
    (31, "DeleteAcls"),
    (32, "DescribeConfigs"),
    (33, "AlterConfigs"),
    (34, "AlterReplicaLogDirs"),
    (35, "DescribeLogDirs"),
    (36, "SaslAuthenticate"),
    (37, "CreatePartitions"),
    (42, "DeleteGroups"),
    (43, "ElectLeaders"),
    (44, "IncrementalAlterConfigs"),
    (45, "AlterPartitionReassignments"),
    (46, "ListPartitionReassignments"),
    (47, "OffsetDelete"),
    (48, "DescribeClientQuotas"),
    (49, "AlterClientQuotas"),
    (50, "DescribeUserScramCredentials"),
    (51, "AlterUserScramCredentials"),
    (55, "DescribeQuorum"),
    (60, "DescribeCluster"),
    (61, "DescribeProducers"),
    (65, "DescribeTransactions"),
    (66, "ListTransactions"),
    (68, "ConsumerGroupHeartbeat"),
    (69, "ConsumerGroupDescribe"),
    (74, "ListConfigResources"),
    (75, "DescribeTopicPartitions"),
];

/// Native (Iggy 0.8) command codes, by code, with their names; Wharf's own commands last.
pub const NATIVE_APIS: &[(u32, &str)] = &[
    (1, "Ping"),
    (10, "GetStats"),
    (11, "GetSnapshot"),
    (12, "GetClusterMetadata"),
    (20, "GetMe"),
    (21, "GetClient"),
    (22, "GetClients"),
    (31, "GetUser"),
    (32, "GetUsers"),
    (33, "CreateUser"),
    (34, "DeleteUser"),
    (35, "UpdateUser"),
    (36, "UpdatePermissions"),
    (37, "ChangePassword"),
    (38, "LoginUser"),
    (39, "LogoutUser"),
    (41, "GetPersonalAccessTokens"),
    (42, "CreatePersonalAccessToken"),
    (43, "DeletePersonalAccessToken"),
    (44, "LoginWithPersonalAccessToken"),
    (100, "PollMessages"),
    (101, "SendMessages"),
    (102, "FlushUnsavedBuffer"),
    (120, "GetConsumerOffset"),
    (121, "StoreConsumerOffset"),
    (122, "DeleteConsumerOffset"),
    (200, "GetStream"),
    (201, "GetStreams"),
    (202, "CreateStream"),
    (203, "DeleteStream"),
    (204, "UpdateStream"),
    (205, "PurgeStream"),
    (300, "GetTopic"),
    (301, "GetTopics"),
    (302, "CreateTopic"),
    (303, "DeleteTopic"),
    (304, "UpdateTopic"),
    (305, "PurgeTopic"),
    (402, "CreatePartitions"),
    (403, "DeletePartitions"),
    (503, "DeleteSegments"),
    (600, "GetConsumerGroup"),
    (601, "GetConsumerGroups"),
    (602, "CreateConsumerGroup"),
    (603, "DeleteConsumerGroup"),
    (604, "JoinConsumerGroup"),
    (605, "LeaveConsumerGroup"),
    (10_001, "WharfGetTopicDurability"),
    (10_002, "WharfSetTopicDurability"),
    (10_003, "WharfGetTopicConfig"),
    (10_004, "WharfSetTopicConfig"),
    (10_005, "WharfConsumerLag"),
    (10_006, "WharfMetricsSnapshot"),
];

/// The index of Kafka API `key` in [`KAFKA_APIS`]; [`KAFKA_APIS`]`.len()` (the `Unknown`
/// slot) for any other key.
pub fn kafka_slot(key: i16) -> usize {
    KAFKA_APIS
        .binary_search_by_key(&key, |&(k, _)| k)
        .unwrap_or(KAFKA_APIS.len())
}

/// The index of native command `code` in [`NATIVE_APIS`]; [`NATIVE_APIS`]`.len()` (the
/// `Unknown` slot) for any other code.
pub fn native_slot(code: u32) -> usize {
    NATIVE_APIS
        .binary_search_by_key(&code, |&(c, _)| c)
        .unwrap_or(NATIVE_APIS.len())
}

/// The `api` label of a door's slot.
pub fn slot_name(table: &[(impl Copy, &'static str)], slot: usize) -> &'static str {
    table.get(slot).map_or(UNKNOWN, |&(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_so_slots_are_found_by_search() {
        assert!(KAFKA_APIS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(NATIVE_APIS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(slot_name(KAFKA_APIS, kafka_slot(0)), "Produce");
        assert_eq!(slot_name(KAFKA_APIS, kafka_slot(1)), "Fetch");
        assert_eq!(slot_name(KAFKA_APIS, kafka_slot(-1)), UNKNOWN);
        assert_eq!(slot_name(NATIVE_APIS, native_slot(101)), "SendMessages");
        assert_eq!(slot_name(NATIVE_APIS, native_slot(100)), "PollMessages");
        assert_eq!(slot_name(NATIVE_APIS, native_slot(7)), UNKNOWN);
    }

    #[test]
    fn every_api_the_kafka_door_advertises_has_a_name() {
        for &(key, _, _) in crate::kafka::versions::ADVERTISED {
            assert_ne!(
                kafka_slot(key),
                KAFKA_APIS.len(),
                "API key {key} has no name"
            );
        }
    }

    #[test]
    fn every_native_command_has_a_name() {
        for code in 0..=11_000 {
            if wharf_protocol::codes::command_name(code).is_some() {
                assert_ne!(
                    native_slot(code),
                    NATIVE_APIS.len(),
                    "code {code} has no name"
                );
            }
        }
    }
}
