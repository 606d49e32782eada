//! Topic lifecycle, for both doors: streams and topics created, renamed, altered, purged and
//! deleted with the naming rules of [`super::names`], partitions added and removed, and what goes
//! with a topic when it goes (its committed offsets, its native groups, its idempotent producers'
//! state). Kafka names are resolved here too, so both doors agree on what a name means.
//!
//! New names follow the naming rule of [`super::names`], and partitions are bounded per topic and
//! in total (`server.max_partitions_per_topic`, `server.max_partitions`): both are checked
//! before anything is created, so a refused request leaves nothing behind.
//!
//! Catalog changes write and sync files, so they run on the blocking pool, one at a time (the
//! collision and limit checks and the change happen under one lock).

use std::sync::Arc;

use super::names::{self, Location};
use super::{
    Broker, BrokerError, Ident, NameKind, PartitionLimit, PartitionStats, StoreError, StreamInfo,
    TopicInfo, TopicSettings,
};
use wharf_log_store::LogStore;

/// Most partitions one create or add may ask for, as Iggy allows.
pub const MAX_PARTITIONS_PER_REQUEST: u32 = 1000;

fn check_partitions_to_add(count: u32) -> Result<(), BrokerError> {
    if count == 0 {
        return Err(BrokerError::InvalidPartitionCount(
            "add at least 1 partition".into(),
        ));
    }
    check_request_size(count)
}

/// Iggy's bound on one create or add (its answer is TooManyPartitions).
fn check_request_size(count: u32) -> Result<(), BrokerError> {
    if count > MAX_PARTITIONS_PER_REQUEST {
        return Err(BrokerError::PartitionLimit {
            limit: PartitionLimit::PerTopic,
            message: format!(
                "{count} partitions requested; at most {MAX_PARTITIONS_PER_REQUEST} per request"
            ),
        });
    }
    Ok(())
}

/// The partition limits, checked before a create or add of `adding` partitions to a topic that
/// has `topic_now`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    per_topic: u32,
    total: u32,
}

impl Limits {
    fn check(self, store: &LogStore, topic_now: u32, adding: u32) -> Result<(), BrokerError> {
        let topic_after = u64::from(topic_now) + u64::from(adding);
        if topic_after > u64::from(self.per_topic) {
            return Err(BrokerError::PartitionLimit {
                limit: PartitionLimit::PerTopic,
                message: format!(
                    "a topic may have at most {} partitions (server.max_partitions_per_topic); \
                     this request would give it {topic_after}",
                    self.per_topic
                ),
            });
        }
        let total_now: u64 = store
            .streams()
            .iter()
            .flat_map(|s| store.topics(Ident::Id(s.id)).unwrap_or_default())
            .map(|t| u64::from(t.partitions))
            .sum();
        if total_now + u64::from(adding) > u64::from(self.total) {
            return Err(BrokerError::PartitionLimit {
                limit: PartitionLimit::Total,
                message: format!(
                    "the server may hold at most {} partitions (server.max_partitions); it \
                     holds {total_now}, and this request asks for {adding} more",
                    self.total
                ),
            });
        }
        Ok(())
    }
}

impl Broker {
    fn limits(&self) -> Limits {
        Limits {
            per_topic: self.max_partitions_per_topic,
            total: self.max_partitions,
        }
    }

    /// The stream whose topics Kafka clients see under their plain names.
    pub fn default_stream(&self) -> &str {
        &self.default_stream
    }

    pub fn streams(&self) -> Vec<StreamInfo> {
        self.store.streams()
    }

    pub fn stream(&self, s: Ident<'_>) -> Result<StreamInfo, BrokerError> {
        Ok(self.store.stream(s)?)
    }

    pub fn topics(&self, stream: u32) -> Result<Vec<TopicInfo>, BrokerError> {
        Ok(self.store.topics(Ident::Id(stream))?)
    }

    pub fn topic(&self, s: Ident<'_>, t: Ident<'_>) -> Result<TopicInfo, BrokerError> {
        Ok(self.store.topic(s, t)?)
    }

    /// The size and bounds of each partition of a topic, in partition order.
    pub fn partition_stats(&self, stream: u32, topic: u32) -> Vec<PartitionStats> {
        self.store
            .partitions(Ident::Id(stream), Ident::Id(topic))
            .unwrap_or_default()
            .iter()
            .map(|p| p.stats())
            .collect()
    }

    /// Creates a stream, unless its name would capture a default-stream topic's Kafka name.
    pub async fn create_stream(&self, name: &str) -> Result<StreamInfo, BrokerError> {
        names::validate_stream_name(&self.default_stream, name)?;
        let name = name.to_string();
        let default = self.default_stream.clone();
        let lock = Arc::clone(&self.catalog_changes);
        self.blocking(move |store| {
            let _changing = lock.lock();
            names::check_stream_name(&default, &name, &default_topics(store, &default))?;
            store
                .create_stream(&name)
                .map_err(|e| BrokerError::for_name(NameKind::Stream, e))
        })
        .await
    }

    pub async fn rename_stream(&self, stream: u32, name: &str) -> Result<(), BrokerError> {
        let name = name.to_string();
        let default = self.default_stream.clone();
        let lock = Arc::clone(&self.catalog_changes);
        self.blocking(move |store| {
            let _changing = lock.lock();
            let current = store.stream(Ident::Id(stream))?;
            if current.name == default && name != default {
                // The default stream's topics would all change their Kafka names at once.
                if !store.topics(Ident::Id(stream))?.is_empty() {
                    return Err(BrokerError::NameCollision(format!(
                        "stream '{default}' holds the Kafka door's topics; it cannot be renamed \
                         while it has any"
                    )));
                }
            }
            if current.name != name {
                let topics = store.topics(Ident::Id(stream))?;
                names::validate_stream_rename(&default, &name, &topics)?;
                names::check_stream_name(&default, &name, &default_topics(store, &default))?;
            }
            store
                .rename_stream(Ident::Id(stream), &name)
                .map_err(|e| BrokerError::for_name(NameKind::Stream, e))?;
            Ok(())
        })
        .await
    }

    /// Deletes a stream with its topics, their stored offsets, their native consumer groups and
    /// their idempotent producers' state, whichever protocol asked.
    pub async fn delete_stream(&self, stream: u32) -> Result<(), BrokerError> {
        let lock = Arc::clone(&self.catalog_changes);
        let groups = Arc::clone(&self.groups);
        self.blocking(move |store| {
            let _changing = lock.lock();
            store.delete_stream(Ident::Id(stream))?;
            groups.drop_topics(stream, None)
        })
        .await?;
        self.metrics.forget_stream(stream);
        self.producers.forget(|k| k.stream != stream);
        Ok(())
    }

    pub async fn purge_stream(&self, stream: u32) -> Result<(), BrokerError> {
        self.blocking(move |store| Ok(store.purge_stream(Ident::Id(stream))?))
            .await?;
        self.producers.forget(|k| k.stream != stream);
        Ok(())
    }

    /// Creates a topic in a stream, unless its Kafka name would collide.
    pub async fn create_topic(
        &self,
        stream: u32,
        name: &str,
        partitions: u32,
        settings: TopicSettings,
    ) -> Result<TopicInfo, BrokerError> {
        check_request_size(partitions)?;
        let name = name.to_string();
        let default = self.default_stream.clone();
        let lock = Arc::clone(&self.catalog_changes);
        let limits = self.limits();
        self.blocking(move |store| {
            let _changing = lock.lock();
            let s = store.stream(Ident::Id(stream))?;
            names::validate_topic_name(&default, &s.name, &name)?;
            names::check_topic_name(&default, &store.streams(), &s.name, &name)?;
            limits.check(store, 0, partitions)?;
            store
                .create_topic(Ident::Id(stream), &name, partitions, settings)
                .map_err(|e| BrokerError::for_name(NameKind::Topic, e))
        })
        .await
    }

    /// Renames a topic (when `name` is given) and replaces its settings.
    pub async fn update_topic(
        &self,
        stream: u32,
        topic: u32,
        name: Option<&str>,
        settings: TopicSettings,
    ) -> Result<TopicInfo, BrokerError> {
        let name = name.map(str::to_string);
        let default = self.default_stream.clone();
        let lock = Arc::clone(&self.catalog_changes);
        self.blocking(move |store| {
            let _changing = lock.lock();
            let current = store.topic(Ident::Id(stream), Ident::Id(topic))?;
            if let Some(n) = name.as_deref().filter(|n| *n != current.name) {
                let s = store.stream(Ident::Id(stream))?;
                names::validate_topic_name(&default, &s.name, n)?;
                names::check_topic_name(&default, &store.streams(), &s.name, n)?;
            }
            store
                .update_topic(
                    Ident::Id(stream),
                    Ident::Id(topic),
                    name.as_deref(),
                    settings,
                )
                .map_err(|e| BrokerError::for_name(NameKind::Topic, e))
        })
        .await
    }

    /// Deletes a topic with its stored offsets, its native consumer groups and its idempotent
    /// producers' state.
    pub async fn delete_topic(&self, stream: u32, topic: u32) -> Result<(), BrokerError> {
        let lock = Arc::clone(&self.catalog_changes);
        let groups = Arc::clone(&self.groups);
        self.blocking(move |store| {
            let _changing = lock.lock();
            store.delete_topic(Ident::Id(stream), Ident::Id(topic))?;
            groups.drop_topics(stream, Some(topic))
        })
        .await?;
        self.metrics.forget_topic(stream, topic);
        self.producers
            .forget(|k| !(k.stream == stream && k.topic == topic));
        Ok(())
    }

    /// Deletes every message of a topic; its partitions start again at offset 0.
    pub async fn purge_topic(&self, stream: u32, topic: u32) -> Result<(), BrokerError> {
        self.blocking(move |store| Ok(store.purge_topic(Ident::Id(stream), Ident::Id(topic))?))
            .await?;
        self.producers
            .forget(|k| !(k.stream == stream && k.topic == topic));
        Ok(())
    }

    /// Adds `count` partitions. Returns the new partition count.
    pub async fn add_partitions(
        &self,
        stream: u32,
        topic: u32,
        count: u32,
    ) -> Result<u32, BrokerError> {
        check_partitions_to_add(count)?;
        let lock = Arc::clone(&self.catalog_changes);
        let limits = self.limits();
        self.blocking(move |store| {
            let _changing = lock.lock();
            let t = store.topic(Ident::Id(stream), Ident::Id(topic))?;
            limits.check(store, t.partitions, count)?;
            Ok(store.add_partitions(Ident::Id(stream), Ident::Id(topic), count)?)
        })
        .await
    }

    /// Checks an add of `count` partitions as [`Broker::add_partitions`] would, adding none
    /// (Kafka's `validate_only`).
    pub fn check_add_partitions(
        &self,
        stream: u32,
        topic: u32,
        count: u32,
    ) -> Result<(), BrokerError> {
        check_partitions_to_add(count)?;
        let t = self.store.topic(Ident::Id(stream), Ident::Id(topic))?;
        self.limits().check(&self.store, t.partitions, count)
    }

    /// Removes the last `count` partitions. Returns the new partition count.
    pub async fn remove_partitions(
        &self,
        stream: u32,
        topic: u32,
        count: u32,
    ) -> Result<u32, BrokerError> {
        let lock = Arc::clone(&self.catalog_changes);
        let left = self
            .blocking(move |store| {
                let _changing = lock.lock();
                Ok(store.remove_partitions(Ident::Id(stream), Ident::Id(topic), count)?)
            })
            .await?;
        self.producers
            .forget(|k| !(k.stream == stream && k.topic == topic && k.partition >= left));
        Ok(left)
    }

    /// Deletes up to `count` of a partition's oldest sealed segments.
    pub async fn delete_segments(
        &self,
        stream: u32,
        topic: u32,
        partition: u32,
        count: u32,
    ) -> Result<u32, BrokerError> {
        self.blocking(move |store| {
            let p = store.partition(Ident::Id(stream), Ident::Id(topic), partition)?;
            Ok(p.delete_segments(count)?)
        })
        .await
    }

    // ----- Kafka names -----

    pub(super) fn locate(&self, name: &str) -> Location {
        names::locate(
            &self.default_stream,
            |s| self.store.stream(Ident::Name(s)).is_ok(),
            name,
        )
    }

    /// The existing topic a Kafka name points to. A name Kafka's rule refuses points nowhere
    /// (a topic named before the rule is not served to Kafka clients).
    pub fn kafka_topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        names::validate_kafka_name(name)?;
        let loc = self.locate(name);
        Ok(self
            .store
            .topic(Ident::Name(&loc.stream), Ident::Name(&loc.topic))?)
    }

    /// The topic a Kafka topic id names, with its Kafka name: the id is decoded (see
    /// [`names::topic_uuid`]) and checked against the catalog, so one look-up costs what a
    /// look-up by name costs, whatever the number of topics (Fetch v13+, Produce v13 and
    /// Metadata v12+ name topics by id on every request). A re-created topic has another id.
    pub fn kafka_topic_by_id(&self, id: uuid::Uuid) -> Option<(String, TopicInfo)> {
        let (stream_id, topic_id, created_at) = names::topic_uuid_parts(id);
        let stream = self.store.stream(Ident::Id(stream_id)).ok()?;
        let topic = self
            .store
            .topic(Ident::Id(stream_id), Ident::Id(topic_id))
            .ok()?;
        if topic.created_at != created_at {
            return None;
        }
        let exists = |n: &str| self.store.stream(Ident::Name(n)).is_ok();
        if !names::reachable(&self.default_stream, exists, &stream.name, &topic.name) {
            return None;
        }
        let name = names::kafka_name(&self.default_stream, &stream.name, &topic.name);
        names::validate_kafka_name(&name).ok()?;
        Some((name, topic))
    }

    /// Every topic Kafka clients can reach, with its Kafka name (a legal one: topics named
    /// before the naming rule are left out).
    pub fn kafka_topics(&self) -> Vec<(String, TopicInfo)> {
        let streams = self.store.streams();
        let exists = |n: &str| streams.iter().any(|s| s.name == n);
        let mut out = Vec::new();
        for s in &streams {
            let Ok(topics) = self.store.topics(Ident::Id(s.id)) else {
                continue;
            };
            for t in topics {
                if !names::reachable(&self.default_stream, exists, &s.name, &t.name) {
                    continue;
                }
                let name = names::kafka_name(&self.default_stream, &s.name, &t.name);
                if names::validate_kafka_name(&name).is_ok() {
                    out.push((name, t));
                }
            }
        }
        out
    }

    /// Creates the topic a Kafka name points to (in the default stream, made on first use, or
    /// in the stream its prefix names). With `validate_only`, checks everything and creates
    /// nothing.
    pub async fn create_kafka_topic(
        &self,
        name: &str,
        partitions: u32,
        settings: TopicSettings,
        validate_only: bool,
    ) -> Result<Option<TopicInfo>, BrokerError> {
        names::validate_kafka_name(name)?;
        settings.validate()?;
        let name = name.to_string();
        let default = self.default_stream.clone();
        let lock = Arc::clone(&self.catalog_changes);
        let limits = self.limits();
        self.blocking(move |store| {
            let _changing = lock.lock();
            let loc = names::locate(&default, |s| store.stream(Ident::Name(s)).is_ok(), &name);
            names::validate_topic_name(&default, &loc.stream, &loc.topic)?;
            limits.check(store, 0, partitions)?;
            if validate_only {
                if store
                    .topic(Ident::Name(&loc.stream), Ident::Name(&loc.topic))
                    .is_ok()
                {
                    return Err(StoreError::TopicExists {
                        stream: loc.stream,
                        topic: loc.topic,
                    }
                    .into());
                }
                return Ok(None);
            }
            if loc.stream == default {
                match store.create_stream(&default) {
                    Ok(_) | Err(StoreError::StreamExists(_)) => {}
                    Err(e) => return Err(BrokerError::for_name(NameKind::Stream, e)),
                }
            }
            names::check_topic_name(&default, &store.streams(), &loc.stream, &loc.topic)?;
            store
                .create_topic(Ident::Name(&loc.stream), &loc.topic, partitions, settings)
                .map(Some)
                .map_err(|e| BrokerError::for_name(NameKind::Topic, e))
        })
        .await
    }
}

/// The default stream's topics (none when it does not exist yet).
fn default_topics(store: &wharf_log_store::LogStore, default: &str) -> Vec<TopicInfo> {
    store.topics(Ident::Name(default)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use crate::broker::BrokerSettings;
    use wharf_log_store::StoreConfig;

    #[tokio::test]
    async fn a_topic_id_finds_its_topic_and_a_recreated_topic_has_another() {
        let dir = tempfile::tempdir().unwrap();
        let b = Broker::open(
            dir.path(),
            StoreConfig::default(),
            BrokerSettings::for_tests(),
        )
        .unwrap();
        let make = || b.create_kafka_topic("orders", 2, Default::default(), false);
        let t = make().await.unwrap().unwrap();
        let id = names::topic_uuid(&t);
        let (name, found) = b.kafka_topic_by_id(id).unwrap();
        assert_eq!(
            (name.as_str(), found.id, found.partitions),
            ("orders", t.id, 2)
        );
        assert!(b
            .kafka_topic_by_id(uuid::Uuid::from_bytes([7; 16]))
            .is_none());
        b.delete_topic(t.stream_id, t.id).await.unwrap();
        assert!(
            b.kafka_topic_by_id(id).is_none(),
            "a deleted topic's id names nothing"
        );
        let again = make().await.unwrap().unwrap();
        let new_id = names::topic_uuid(&again);
        if new_id != id {
            assert!(
                b.kafka_topic_by_id(id).is_none(),
                "the old id stays unknown"
            );
        }
        assert_eq!(b.kafka_topic_by_id(new_id).unwrap().0, "orders");
    }
}
