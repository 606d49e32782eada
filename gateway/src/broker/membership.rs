//! Consumer group membership, for both doors: Kafka's classic groups (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup through the [`GroupCoordinator`]) and Iggy's server-assigned groups.
//! Committed offsets, which both kinds share, are in [`super::offsets`].
//!
//! [`GroupCoordinator`]: super::GroupCoordinator

use super::consumer_protocol::{
    ConsumerGroupView, Heartbeat, HeartbeatAnswer, TopicsView, LEAVE_EPOCH,
};
use super::coordinator::{GroupError, JoinRequest, JoinResult, MemberRef, SyncRequest, SyncResult};
use super::names::topic_uuid;
use super::offsets::group_ident;
use super::{Broker, GroupInfo, TopicInfo};
use wharf_protocol::Identifier;

impl Broker {
    /// Kafka JoinGroup: resolves when the group's rebalance completes (or the member must
    /// retry). A classic member of a consumer-protocol group subscribes through the topics.
    pub async fn join_group(&self, req: JoinRequest) -> JoinResult {
        let topics = if self.coordinator.is_consumer_group(&req.group_id) {
            self.topics_view(|_| true)
        } else {
            TopicsView::default()
        };
        self.coordinator.join_with_topics(req, &topics).await
    }

    /// Every topic Kafka clients reach (the group's view never depends on who asks), with
    /// those `may_describe` refuses marked hidden: a member's own regex never matches them.
    fn topics_view(&self, may_describe: impl Fn(&str) -> bool) -> TopicsView {
        let mut topics = TopicsView::default();
        for (name, t) in self.kafka_topics() {
            if !may_describe(&name) {
                topics.hidden.insert(name.clone());
            }
            topics.by_name.insert(name, (topic_uuid(&t), t.partitions));
        }
        topics
    }

    /// Kafka SyncGroup: resolves with the member's assignment once the leader sent them.
    pub async fn sync_group(&self, req: SyncRequest) -> SyncResult {
        self.coordinator.sync(req).await
    }

    /// Kafka Heartbeat.
    pub fn heartbeat(&self, group: &str, who: MemberRef<'_>) -> Result<(), GroupError> {
        self.coordinator.heartbeat(group, who)
    }

    /// Kafka LeaveGroup for each `(member id, group instance id)`.
    pub fn leave_group(
        &self,
        group: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.coordinator.leave(group, leaving)
    }

    /// Kafka ConsumerGroupHeartbeat (KIP-848). The group sees every topic (its subscription
    /// metadata must not depend on who heartbeats); `may_describe` says which topics the
    /// member's principal may see, which only its own regex is resolved against (the door
    /// checks its explicit names, as Kafka's KafkaApis).
    pub fn consumer_group_heartbeat(
        &self,
        req: &Heartbeat,
        may_describe: impl Fn(&str) -> bool,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let topics = self.topics_view(may_describe);
        let config = self.group_config(&req.group_id);
        let answer = self.coordinator.consumer_heartbeat(req, &config, &topics);
        let group = &req.group_id;
        if answer.is_ok()
            && req.member_epoch == LEAVE_EPOCH
            && self.coordinator.is_consumer_group(group)
            && self
                .coordinator
                .consumer_group_subscriptions(group)
                .is_none()
        {
            let has_offsets = self.group_has_offsets(group);
            self.coordinator
                .drop_empty_consumer_group(group, has_offsets);
        }
        answer
    }

    /// Kafka ConsumerGroupDescribe for one group.
    pub fn describe_consumer_group(&self, group: &str) -> Result<ConsumerGroupView, GroupError> {
        self.coordinator.describe_consumer_group(group)
    }

    /// True when OffsetCommit below v9 must be refused (UNSUPPORTED_VERSION): the committing
    /// member of `group` uses the consumer protocol.
    pub fn offset_commit_needs_v9(&self, group: &str, member_id: &str) -> bool {
        self.coordinator.uses_consumer_protocol(group, member_id)
    }

    /// OffsetFetch v9's member check (only consumer-protocol groups are checked).
    pub fn check_offset_fetch_member(
        &self,
        group: &str,
        member: Option<(&str, i32)>,
    ) -> Result<(), GroupError> {
        self.coordinator.check_offset_fetch(group, member)
    }

    /// Expires Kafka group members and rebalances on their deadlines until `stopped`.
    pub async fn drive_group_timers(&self, stopped: crate::server::Stopped) {
        self.coordinator.drive_timers(stopped).await;
    }

    /// A native consumer group of a topic, with its members' assignments.
    pub fn native_group(&self, t: &TopicInfo, group: &Identifier) -> Option<GroupInfo> {
        self.groups
            .get(t.stream_id, t.id, group_ident(group), t.partitions)
    }

    /// The native consumer groups of a topic.
    pub fn native_groups(&self, t: &TopicInfo) -> Vec<GroupInfo> {
        self.groups.list(t.stream_id, t.id, t.partitions)
    }

    /// How many native consumer groups exist.
    pub fn native_group_count(&self) -> usize {
        self.groups.count()
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
