//! The consumer: polls a partition (single consumer) or the partitions the server assigns it
//! (consumer group), yields messages one by one as a `futures::Stream`, and commits offsets as
//! configured. `shutdown()` stores the final offsets and leaves the group.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Mutex;
use wharf_protocol::{status, Consumer as WireConsumer, Identifier, PollingStrategy};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::message::ReceivedMessage;

/// When consumed offsets are stored on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCommit {
    /// Offsets are stored only by [`Consumer::commit`] and [`Consumer::shutdown`].
    Disabled,
    /// Every so often, the last consumed offset of each partition.
    Interval(Duration),
    /// The server stores the last offset of each poll's answer.
    OnPoll,
    /// After each message the stream yields.
    AfterEach,
}

#[derive(Debug, Clone)]
enum Kind {
    Single {
        name: String,
        partition: u32,
    },
    Group {
        name: String,
        create_if_missing: bool,
    },
}

/// Builds a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    client: Client,
    stream: Identifier,
    topic: Identifier,
    kind: Kind,
    strategy: PollingStrategy,
    batch: u32,
    auto_commit: AutoCommit,
    idle_wait: Duration,
}

impl ConsumerBuilder {
    /// A single consumer reading one partition.
    pub fn single(
        client: &Client,
        name: &str,
        stream: Identifier,
        topic: Identifier,
        partition: u32,
    ) -> Self {
        Self::new(
            client,
            stream,
            topic,
            Kind::Single {
                name: name.into(),
                partition,
            },
        )
    }

    /// A member of a consumer group: the server assigns its partitions.
    pub fn group(client: &Client, group: &str, stream: Identifier, topic: Identifier) -> Self {
        Self::new(
            client,
            stream,
            topic,
            Kind::Group {
                name: group.into(),
                create_if_missing: true,
            },
        )
    }

    fn new(client: &Client, stream: Identifier, topic: Identifier, kind: Kind) -> Self {
        ConsumerBuilder {
            client: client.clone(),
            stream,
            topic,
            kind,
            strategy: PollingStrategy::Next,
            batch: 100,
            auto_commit: AutoCommit::Interval(Duration::from_secs(1)),
            idle_wait: Duration::from_millis(50),
        }
    }

    /// Where a single consumer starts (default: `Next`, after the stored offset). Group members
    /// always continue from the group's stored offsets, since the server picks the partition of
    /// each poll.
    pub fn polling_strategy(mut self, s: PollingStrategy) -> Self {
        self.strategy = s;
        self
    }

    /// Messages asked for per poll.
    pub fn batch(mut self, n: u32) -> Self {
        self.batch = n.max(1);
        self
    }

    /// When offsets are stored (default: every second, checked as messages are consumed).
    pub fn auto_commit(mut self, a: AutoCommit) -> Self {
        self.auto_commit = a;
        self
    }

    /// For groups: fail instead of creating a missing group.
    pub fn do_not_create_group(mut self) -> Self {
        if let Kind::Group {
            create_if_missing, ..
        } = &mut self.kind
        {
            *create_if_missing = false;
        }
        self
    }

    /// How long to wait before polling again after an empty answer.
    pub fn idle_wait(mut self, d: Duration) -> Self {
        self.idle_wait = d;
        self
    }

    /// Checks the topic, creates and joins the group if asked, and returns the consumer.
    pub async fn build(self) -> Result<Consumer> {
        if self
            .client
            .get_topic(&self.stream, &self.topic)
            .await?
            .is_none()
        {
            return Err(Error::InvalidInput(format!(
                "topic {} not found in stream {}",
                self.topic, self.stream
            )));
        }
        let (wire, partition) = match &self.kind {
            Kind::Single { name, partition } => (
                WireConsumer::Single(Identifier::Name(name.clone())),
                Some(*partition),
            ),
            Kind::Group {
                name,
                create_if_missing,
            } => {
                let gid = Identifier::Name(name.clone());
                if self
                    .client
                    .get_consumer_group(&self.stream, &self.topic, &gid)
                    .await?
                    .is_none()
                {
                    if !create_if_missing {
                        return Err(Error::Server {
                            code: status::CONSUMER_GROUP_NAME_NOT_FOUND,
                        });
                    }
                    match self
                        .client
                        .create_consumer_group(&self.stream, &self.topic, name)
                        .await
                    {
                        Ok(_) => {}
                        Err(Error::Server {
                            code: status::CONSUMER_GROUP_NAME_ALREADY_EXISTS,
                        }) => {}
                        Err(e) => return Err(e),
                    }
                }
                self.client
                    .join_consumer_group(&self.stream, &self.topic, &gid)
                    .await?;
                (WireConsumer::Group(gid), None)
            }
        };
        let state = State {
            client: self.client,
            stream: self.stream,
            topic: self.topic,
            group: matches!(self.kind, Kind::Group { .. }).then(|| match &wire {
                WireConsumer::Group(g) => g.clone(),
                WireConsumer::Single(s) => s.clone(),
            }),
            consumer: wire,
            partition,
            strategy: if matches!(self.kind, Kind::Group { .. }) {
                PollingStrategy::Next
            } else {
                self.strategy
            },
            batch: self.batch,
            auto_commit: self.auto_commit,
            idle_wait: self.idle_wait,
            buffer: VecDeque::new(),
            consumed: HashMap::new(),
            stored: HashMap::new(),
            last_commit: tokio::time::Instant::now(),
        };
        Ok(Consumer {
            state: Arc::new(Mutex::new(state)),
            pending: None,
        })
    }
}

#[derive(Debug)]
struct State {
    client: Client,
    stream: Identifier,
    topic: Identifier,
    consumer: WireConsumer,
    group: Option<Identifier>,
    partition: Option<u32>,
    strategy: PollingStrategy,
    batch: u32,
    auto_commit: AutoCommit,
    idle_wait: Duration,
    buffer: VecDeque<ReceivedMessage>,
    /// Last offset handed out, per partition.
    consumed: HashMap<u32, u64>,
    /// Last offset stored on the server, per partition.
    stored: HashMap<u32, u64>,
    last_commit: tokio::time::Instant,
}

impl State {
    async fn store(&mut self, partition: u32, offset: u64) -> Result<()> {
        self.client
            .store_consumer_offset(
                &self.consumer,
                &self.stream,
                &self.topic,
                Some(partition),
                offset,
            )
            .await?;
        self.stored.insert(partition, offset);
        Ok(())
    }

    async fn commit_consumed(&mut self) -> Result<()> {
        let due: Vec<(u32, u64)> = self
            .consumed
            .iter()
            .filter(|(p, o)| self.stored.get(p) != Some(o))
            .map(|(p, o)| (*p, *o))
            .collect();
        for (p, o) in due {
            self.store(p, o).await?;
        }
        self.last_commit = tokio::time::Instant::now();
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<ReceivedMessage>> {
        loop {
            if let Some(m) = self.buffer.pop_front() {
                self.consumed.insert(m.partition_id, m.offset);
                // A failed commit does not cost the message: it is still handed out, and the
                // offset is stored again with the next commit.
                let commit = match self.auto_commit {
                    AutoCommit::AfterEach => self.store(m.partition_id, m.offset).await,
                    AutoCommit::Interval(every) if self.last_commit.elapsed() >= every => {
                        self.commit_consumed().await
                    }
                    _ => Ok(()),
                };
                if let Err(e) = commit {
                    tracing::warn!(
                        "storing consumer offsets failed (retried on the next commit): {e}"
                    );
                }
                return Some(Ok(m));
            }
            let polled = self
                .client
                .poll_messages(
                    &self.stream,
                    &self.topic,
                    self.partition,
                    &self.consumer,
                    self.strategy,
                    self.batch,
                    self.auto_commit == AutoCommit::OnPoll,
                )
                .await;
            let polled = match polled {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            if let Some(last) = polled.messages.last() {
                if !matches!(self.strategy, PollingStrategy::Next) {
                    self.strategy = PollingStrategy::Offset(last.offset + 1);
                }
                if self.auto_commit == AutoCommit::OnPoll {
                    self.stored.insert(last.partition_id, last.offset);
                }
                self.buffer.extend(polled.messages);
            } else {
                tokio::time::sleep(self.idle_wait).await;
            }
        }
    }
}

type NextMessage = Pin<Box<dyn Future<Output = Option<Result<ReceivedMessage>>> + Send>>;

/// A consumer; a `futures::Stream` of messages.
pub struct Consumer {
    state: Arc<Mutex<State>>,
    pending: Option<NextMessage>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl Consumer {
    /// A builder for a single consumer of one partition.
    pub fn single(
        client: &Client,
        name: &str,
        stream: Identifier,
        topic: Identifier,
        partition: u32,
    ) -> ConsumerBuilder {
        ConsumerBuilder::single(client, name, stream, topic, partition)
    }

    /// A builder for a consumer-group member.
    pub fn group(
        client: &Client,
        group: &str,
        stream: Identifier,
        topic: Identifier,
    ) -> ConsumerBuilder {
        ConsumerBuilder::group(client, group, stream, topic)
    }

    /// The next message (waiting for one if need be).
    pub async fn next_message(&mut self) -> Option<Result<ReceivedMessage>> {
        self.pending = None;
        self.state.lock().await.next().await
    }

    /// Stores the offsets consumed so far.
    pub async fn commit(&self) -> Result<()> {
        self.state.lock().await.commit_consumed().await
    }

    /// Stores the final offsets and leaves the group.
    pub async fn shutdown(self) -> Result<()> {
        let mut s = self.state.lock().await;
        if s.auto_commit != AutoCommit::Disabled {
            s.commit_consumed().await?;
        }
        if let Some(g) = s.group.clone() {
            s.client
                .leave_consumer_group(&s.stream, &s.topic, &g)
                .await?;
        }
        Ok(())
    }
}

impl futures_core::Stream for Consumer {
    type Item = Result<ReceivedMessage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.pending.is_none() {
            let state = Arc::clone(&self.state);
            self.pending = Some(Box::pin(async move { state.lock().await.next().await }));
        }
        let Some(fut) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => {
                self.pending = None;
                Poll::Ready(v)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
