//! The producer. In direct mode `send` returns once the server has acknowledged the message.
//! In background mode `send` hands the message to the worker of its partition and returns at once;
//! the worker batches by count, bytes and linger time, sends on its own connection, retries what a
//! retry may cure, and reports what it could not deliver through the delivery handle and the error
//! callback. Buffered bytes are bounded; when the bound is reached the configured backpressure
//! applies.
//!
//! Order: each partition has one worker with a connection of its own, on which it pipelines up to
//! `max_in_flight` batches (Iggy's servers answer a connection's requests in order). Messages of
//! one partition are stored in the order `send` was called: a lost connection fails every batch
//! in flight and they are sent again in order (a batch the server had already stored is then
//! stored twice: delivery is at least once); an error answer is retried only when no later batch
//! is in flight, and otherwise the batch fails to the error callback rather than land out of
//! order.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use wharf_protocol::{partition_for_key, Identifier, Partitioning};

use crate::client::{Client, Pipeline};
use crate::error::{Error, Result};
use crate::message::Message;

/// What `send` does when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait until there is room.
    Block,
    /// Wait at most this long, then fail with the message.
    BlockWithTimeout(Duration),
    /// Fail at once, giving the message back.
    FailImmediately,
}

/// Settings of background mode.
#[derive(Debug, Clone)]
pub struct BackgroundConfig {
    /// A batch is sent once it holds this many messages...
    pub batch_messages: usize,
    /// ... or this many bytes...
    pub batch_bytes: usize,
    /// ... or its first message has waited this long.
    pub linger: Duration,
    /// Most bytes buffered (queued or being sent) across all partitions.
    pub buffer_bytes: usize,
    /// What `send` does when the buffer is full.
    pub backpressure: Backpressure,
    /// Retries of a batch after a retriable failure.
    pub retries: u32,
    /// First wait before a retry; doubles each time.
    pub retry_backoff: Duration,
    /// Batches per partition written before the first is answered (pipelined on the worker's
    /// connection; order is kept, see [`Producer`]).
    pub max_in_flight: usize,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            batch_messages: 1000,
            batch_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            buffer_bytes: 64 << 20,
            backpressure: Backpressure::Block,
            retries: 3,
            retry_backoff: Duration::from_millis(100),
            max_in_flight: 5,
        }
    }
}

/// How messages are spread over partitions.
#[derive(Clone)]
pub enum Partitioner {
    /// Partitions in turn, message by message.
    Balanced,
    /// Always this partition.
    Partition(u32),
    /// By the message's key: XxHash32(key) % partitions, the rule Iggy's servers use, so a key
    /// lands on the same partition whichever SDK sent it. Messages without a key are balanced.
    Key,
    /// Your own rule: `(message, partitions) -> partition` (taken modulo the count).
    Custom(CustomPartitioner),
}

/// `(message, partitions) -> partition`.
pub type CustomPartitioner = Arc<dyn Fn(&Message, u32) -> u32 + Send + Sync>;

impl std::fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partitioner::Balanced => f.write_str("Balanced"),
            Partitioner::Partition(p) => write!(f, "Partition({p})"),
            Partitioner::Key => f.write_str("Key"),
            Partitioner::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// Messages that could not be delivered, and why. Given to the error callback.
#[derive(Debug, Clone)]
pub struct SendFailure {
    /// Why.
    pub error: Error,
    /// The partition.
    pub partition: u32,
    /// The messages, as given to `send`.
    pub messages: Vec<Message>,
}

/// A `send` that did not take the message; the message comes back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("send failed: {error}")]
pub struct SendError {
    /// Why.
    pub error: Error,
    /// The message, given back.
    pub message: Box<Message>,
}

/// Where an acknowledged message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The partition.
    pub partition: u32,
}

/// Resolves when the message is acknowledged, or with the error that stopped it.
#[derive(Debug)]
pub struct DeliveryHandle {
    rx: DeliveryState,
}

#[derive(Debug)]
enum DeliveryState {
    Ready(Option<Result<Delivery>>),
    Waiting(oneshot::Receiver<Result<Delivery>>),
}

impl Future for DeliveryHandle {
    type Output = Result<Delivery>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.rx {
            DeliveryState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(Error::Closed))),
            DeliveryState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(Error::Closed))),
        }
    }
}

type ErrorCallback = Arc<dyn Fn(SendFailure) + Send + Sync>;

/// Builds a [`Producer`].
pub struct ProducerBuilder {
    client: Client,
    stream: Identifier,
    topic: Identifier,
    background: Option<BackgroundConfig>,
    partitioner: Partitioner,
    on_error: Option<ErrorCallback>,
}

impl std::fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("stream", &self.stream)
            .field("topic", &self.topic)
            .field("background", &self.background)
            .field("partitioner", &self.partitioner)
            .finish_non_exhaustive()
    }
}

impl ProducerBuilder {
    /// A direct, balanced producer for `topic` of `stream`.
    pub fn new(client: &Client, stream: Identifier, topic: Identifier) -> ProducerBuilder {
        ProducerBuilder {
            client: client.clone(),
            stream,
            topic,
            background: None,
            partitioner: Partitioner::Balanced,
            on_error: None,
        }
    }

    /// `send` returns at once; a worker per partition batches and sends.
    pub fn background(mut self, config: BackgroundConfig) -> Self {
        self.background = Some(config);
        self
    }

    /// How messages are spread over partitions (default: balanced).
    pub fn partitioner(mut self, partitioner: Partitioner) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// Called with every batch that could not be delivered (background mode).
    pub fn on_error(mut self, callback: impl Fn(SendFailure) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// Looks the topic up (for its partition count) and starts the producer.
    pub async fn build(self) -> Result<Producer> {
        let (topic, _) = self
            .client
            .get_topic(&self.stream, &self.topic)
            .await?
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "topic {} not found in stream {}",
                    self.topic, self.stream
                ))
            })?;
        let partitions = topic.partitions_count;
        if partitions == 0 {
            return Err(Error::InvalidInput("the topic has no partitions".into()));
        }
        let background = self.background.map(|config| {
            let budget = Arc::new(Semaphore::new(
                config.buffer_bytes.min(Semaphore::MAX_PERMITS),
            ));
            let outstanding = Arc::new(Outstanding::default());
            let workers = (0..partitions)
                .map(|partition| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let worker = Worker {
                        client: self.client.clone(),
                        stream: self.stream.clone(),
                        topic: self.topic.clone(),
                        partition,
                        config: config.clone(),
                        on_error: self.on_error.clone(),
                        outstanding: Arc::clone(&outstanding),
                        resolved: std::sync::atomic::AtomicU64::new(0),
                    };
                    let handle = tokio::spawn(worker.run(rx));
                    (tx, handle)
                })
                .collect::<Vec<_>>();
            let (senders, handles): (Vec<_>, Vec<_>) = workers.into_iter().unzip();
            Background {
                config,
                budget,
                outstanding,
                senders: parking_mutex(Some(senders)),
                handles: parking_mutex(handles),
            }
        });
        Ok(Producer {
            client: self.client,
            stream: self.stream,
            topic: self.topic,
            partitions,
            partitioner: self.partitioner,
            next: AtomicU32::new(0),
            background,
            shut_down: AtomicBool::new(false),
        })
    }
}

fn parking_mutex<T>(t: T) -> std::sync::Mutex<T> {
    std::sync::Mutex::new(t)
}

/// Messages handed to workers and not yet resolved (for the warning a dropped producer gives).
#[derive(Debug, Default)]
struct Outstanding {
    count: AtomicUsize,
}

impl Outstanding {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }
    fn done(&self, n: usize) {
        self.count.fetch_sub(n, Ordering::AcqRel);
    }
}

enum Envelope {
    Message {
        message: Message,
        done: oneshot::Sender<Result<Delivery>>,
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// Send what is buffered now, without waiting for the linger time, and answer once every
    /// message that came before this marker is resolved.
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Background {
    config: BackgroundConfig,
    budget: Arc<Semaphore>,
    outstanding: Arc<Outstanding>,
    senders: std::sync::Mutex<Option<Vec<mpsc::UnboundedSender<Envelope>>>>,
    handles: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A producer for one topic. See the module docs for direct and background mode.
#[derive(Debug)]
pub struct Producer {
    client: Client,
    stream: Identifier,
    topic: Identifier,
    partitions: u32,
    partitioner: Partitioner,
    next: AtomicU32,
    background: Option<Background>,
    shut_down: AtomicBool,
}

impl Producer {
    /// A builder; see [`ProducerBuilder`].
    pub fn builder(client: &Client, stream: Identifier, topic: Identifier) -> ProducerBuilder {
        ProducerBuilder::new(client, stream, topic)
    }

    fn partition_for(&self, m: &Message) -> u32 {
        let balanced = || self.next.fetch_add(1, Ordering::Relaxed) % self.partitions;
        match &self.partitioner {
            Partitioner::Balanced => balanced(),
            Partitioner::Partition(p) => *p,
            Partitioner::Key => m
                .key
                .as_ref()
                .map_or_else(balanced, |k| partition_for_key(k, self.partitions)),
            Partitioner::Custom(f) => f(m, self.partitions) % self.partitions,
        }
    }

    /// Sends one message. Direct mode: returns after the server acknowledged it. Background
    /// mode: returns once the message is buffered; await the handle for its delivery.
    pub async fn send(&self, message: Message) -> Result<DeliveryHandle, SendError> {
        let fail = |error, message| {
            Err(SendError {
                error,
                message: Box::new(message),
            })
        };
        if self.shut_down.load(Ordering::Acquire) {
            return fail(Error::Closed, message);
        }
        if let Err(e) = message.validate() {
            return fail(e, message);
        }
        let partition = self.partition_for(&message);
        let Some(bg) = &self.background else {
            let r = self
                .client
                .send_messages(
                    &self.stream,
                    &self.topic,
                    &Partitioning::PartitionId(partition),
                    std::slice::from_ref(&message),
                )
                .await;
            return match r {
                Ok(()) => Ok(DeliveryHandle {
                    rx: DeliveryState::Ready(Some(Ok(Delivery { partition }))),
                }),
                Err(e) => fail(e, message),
            };
        };
        let size = (message.wire_len().min(bg.config.buffer_bytes)).min(u32::MAX as usize) as u32;
        let permit = match bg.config.backpressure {
            Backpressure::Block => Arc::clone(&bg.budget).acquire_many_owned(size).await.ok(),
            Backpressure::BlockWithTimeout(t) => {
                match tokio::time::timeout(t, Arc::clone(&bg.budget).acquire_many_owned(size)).await
                {
                    Ok(p) => p.ok(),
                    Err(_) => return fail(Error::Timeout(t), message),
                }
            }
            Backpressure::FailImmediately => {
                match Arc::clone(&bg.budget).try_acquire_many_owned(size) {
                    Ok(p) => Some(p),
                    Err(_) => {
                        return fail(
                            Error::InvalidInput("the producer's buffer is full".into()),
                            message,
                        )
                    }
                }
            }
        };
        let (done, rx) = oneshot::channel();
        let sender = bg
            .senders
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(|s| s.get(partition as usize).cloned()));
        let Some(sender) = sender else {
            return fail(Error::Closed, message);
        };
        bg.outstanding.add();
        if let Err(mpsc::error::SendError(Envelope::Message { message, .. })) =
            sender.send(Envelope::Message {
                message,
                done,
                _permit: permit,
            })
        {
            bg.outstanding.done(1);
            return fail(Error::Closed, message);
        }
        Ok(DeliveryHandle {
            rx: DeliveryState::Waiting(rx),
        })
    }

    /// Sends a batch of messages to one partition in one request (both modes: this is direct).
    pub async fn send_batch(&self, partition: u32, messages: &[Message]) -> Result<()> {
        self.client
            .send_messages(
                &self.stream,
                &self.topic,
                &Partitioning::PartitionId(partition),
                messages,
            )
            .await
    }

    /// Waits until everything sent before this call is acknowledged or has failed (messages
    /// other tasks send meanwhile do not hold it up).
    pub async fn flush(&self) {
        let Some(bg) = &self.background else { return };
        let mut answers = Vec::new();
        if let Ok(senders) = bg.senders.lock() {
            for s in senders.iter().flatten() {
                let (tx, rx) = oneshot::channel();
                if s.send(Envelope::Flush(tx)).is_ok() {
                    answers.push(rx);
                }
            }
        }
        for rx in answers {
            // An error means the worker ended, which it does only once it has resolved all.
            let _ = rx.await;
        }
    }

    /// Flushes, then stops the workers. Sends after this fail with [`Error::Closed`].
    pub async fn shutdown(self) {
        self.shut_down.store(true, Ordering::Release);
        self.flush().await;
        if let Some(bg) = &self.background {
            if let Ok(mut s) = bg.senders.lock() {
                s.take();
            }
            let handles = bg
                .handles
                .lock()
                .map(|mut h| std::mem::take(&mut *h))
                .unwrap_or_default();
            for h in handles {
                let _ = h.await;
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(bg) = &self.background {
            if !self.shut_down.load(Ordering::Acquire)
                && bg.outstanding.count.load(Ordering::Acquire) > 0
            {
                tracing::warn!(
                    "producer dropped without shutdown(); its workers still deliver the {} messages it holds",
                    bg.outstanding.count.load(Ordering::Acquire)
                );
            }
            // Closing the channels lets each worker send what it holds and end.
            if let Ok(mut s) = bg.senders.lock() {
                s.take();
            }
        }
    }
}

/// One partition's worker: forms batches, writes up to `max_in_flight` of them on its own
/// pipelined connection, matches answers to batches in order, retries, resolves.
///
/// Order is kept because a batch is retried only when nothing sent after it has been accepted: a
/// lost connection fails every batch in flight, and they are all sent again in their order; a
/// retriable error answer is retried only when no later batch is in flight, and otherwise fails
/// the batch (to the error callback) rather than let it land behind later ones.
struct Worker {
    client: Client,
    stream: Identifier,
    topic: Identifier,
    partition: u32,
    config: BackgroundConfig,
    on_error: Option<ErrorCallback>,
    outstanding: Arc<Outstanding>,
    /// Messages resolved so far; batches resolve in the order their messages came.
    resolved: std::sync::atomic::AtomicU64,
}

type Pending = (
    Message,
    oneshot::Sender<Result<Delivery>>,
    Option<OwnedSemaphorePermit>,
);

/// A batch written (or about to be) and not yet answered.
struct InFlight {
    messages: Vec<Message>,
    dones: Vec<oneshot::Sender<Result<Delivery>>>,
    /// Buffer budget stays taken until the batch is resolved.
    _permits: Vec<Option<OwnedSemaphorePermit>>,
    payload: bytes::Bytes,
    attempts: u32,
    sent_at: tokio::time::Instant,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Envelope>) {
        let max_in_flight = self.config.max_in_flight.max(1);
        let mut forming: Vec<Pending> = Vec::new();
        let mut forming_bytes = 0usize;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut flush = false;
        let mut open = true;
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut pipe: Option<Pipeline> = None;
        // Messages received so far, and flush markers waiting for the messages before them.
        let mut received = 0u64;
        let mut waiters: Vec<(u64, oneshot::Sender<()>)> = Vec::new();
        loop {
            answer_waiters(&mut waiters, self.resolved.load(Ordering::Acquire));
            let due = !forming.is_empty()
                && (forming.len() >= self.config.batch_messages
                    || forming_bytes >= self.config.batch_bytes
                    || deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
                    || flush
                    || !open);
            if due && inflight.len() < max_in_flight {
                match self.prepare(std::mem::take(&mut forming)) {
                    Ok(batch) => {
                        inflight.push_back(batch);
                        if self.transmit(&mut pipe, &mut inflight, 1).await.is_err() {
                            self.recover(&mut pipe, &mut inflight).await;
                        }
                    }
                    Err(failed) => self.fail(failed),
                }
                forming_bytes = 0;
                deadline = None;
                flush = false;
                continue;
            }
            if forming.is_empty() {
                flush = false;
            }
            if !open && forming.is_empty() && inflight.is_empty() {
                return;
            }
            let oldest = inflight
                .front()
                .map(|b| b.sent_at + self.client.config().request_timeout);
            tokio::select! {
                env = rx.recv(), if open && !due => match env {
                    Some(Envelope::Message { message, done, _permit }) => {
                        received += 1;
                        forming_bytes += message.wire_len();
                        if forming.is_empty() {
                            deadline = Some(tokio::time::Instant::now() + self.config.linger);
                        }
                        forming.push((message, done, _permit));
                    }
                    Some(Envelope::Flush(done)) => {
                        flush = true;
                        waiters.push((received, done));
                        answer_waiters(&mut waiters, self.resolved.load(Ordering::Acquire));
                    }
                    None => open = false,
                },
                () = sleep_until_opt(deadline), if deadline.is_some() && !due => {}
                answer = next_answer(&mut pipe), if !inflight.is_empty() => match answer {
                    Ok(status) => self.answered(status, &mut pipe, &mut inflight).await,
                    Err(_) => self.recover(&mut pipe, &mut inflight).await,
                },
                () = sleep_until_opt(oldest), if oldest.is_some() => {
                    tracing::debug!(partition = self.partition, "no answer in time; reconnecting");
                    self.recover(&mut pipe, &mut inflight).await;
                }
            }
        }
    }

    /// Encodes a batch once, so retries resend the same bytes.
    fn prepare(&self, batch: Vec<Pending>) -> Result<InFlight, (Vec<Pending>, Error)> {
        let messages: Vec<Message> = batch.iter().map(|(m, _, _)| m.clone()).collect();
        let mut payload = bytes::BytesMut::new();
        if let Err(e) = crate::message::encode_send(
            &self.stream,
            &self.topic,
            &Partitioning::PartitionId(self.partition),
            &messages,
            &mut payload,
        ) {
            return Err((batch, e));
        }
        let mut dones = Vec::with_capacity(batch.len());
        let mut permits = Vec::with_capacity(batch.len());
        for (_, d, p) in batch {
            dones.push(d);
            permits.push(p);
        }
        Ok(InFlight {
            messages,
            dones,
            _permits: permits,
            payload: payload.freeze(),
            attempts: 0,
            sent_at: tokio::time::Instant::now(),
        })
    }

    /// Writes the last `n` batches of `inflight`, opening the connection if need be.
    async fn transmit(
        &self,
        pipe: &mut Option<Pipeline>,
        inflight: &mut VecDeque<InFlight>,
        n: usize,
    ) -> Result<()> {
        if pipe.is_none() {
            *pipe = Some(self.client.pipeline().await?);
        }
        let Some(p) = pipe.as_mut() else {
            return Err(Error::Disconnected("no connection".into()));
        };
        let from = inflight.len().saturating_sub(n);
        for b in inflight.iter_mut().skip(from) {
            b.sent_at = tokio::time::Instant::now();
            p.send(wharf_protocol::codes::SEND_MESSAGES, &b.payload)
                .await?;
        }
        Ok(())
    }

    /// The connection failed with batches in flight: reconnect and send them all again, in
    /// order, until the oldest runs out of retries; then they all fail, in order.
    async fn recover(&self, pipe: &mut Option<Pipeline>, inflight: &mut VecDeque<InFlight>) {
        *pipe = None;
        loop {
            let Some(oldest) = inflight.front_mut() else {
                return;
            };
            oldest.attempts += 1;
            let attempt = oldest.attempts;
            if attempt > self.config.retries {
                let error = Error::Disconnected("retries exhausted".into());
                while let Some(b) = inflight.pop_front() {
                    self.resolve(b, Err(error.clone()));
                }
                return;
            }
            let backoff = self.config.retry_backoff * 2u32.saturating_pow(attempt - 1);
            tracing::debug!(
                partition = self.partition,
                attempt,
                "connection lost; resending {} batches in {backoff:?}",
                inflight.len()
            );
            tokio::time::sleep(backoff).await;
            let n = inflight.len();
            match self.transmit(pipe, inflight, n).await {
                Ok(()) => return,
                Err(_) => *pipe = None,
            }
        }
    }

    /// Handles the answer to the oldest batch in flight.
    async fn answered(
        &self,
        status: u32,
        pipe: &mut Option<Pipeline>,
        inflight: &mut VecDeque<InFlight>,
    ) {
        let Some(mut batch) = inflight.pop_front() else {
            return;
        };
        if status == 0 {
            return self.resolve(batch, Ok(()));
        }
        let error = Error::Server { code: status };
        // Retrying behind batches already sent would reorder them: only retry when none is.
        if error.is_retriable() && batch.attempts < self.config.retries && inflight.is_empty() {
            batch.attempts += 1;
            tokio::time::sleep(self.config.retry_backoff * 2u32.saturating_pow(batch.attempts - 1))
                .await;
            inflight.push_back(batch);
            if self.transmit(pipe, inflight, 1).await.is_err() {
                self.recover(pipe, inflight).await;
            }
            return;
        }
        self.resolve(batch, Err(error));
    }

    fn resolve(&self, batch: InFlight, result: Result<()>) {
        let n = batch.dones.len();
        match result {
            Ok(()) => {
                for d in batch.dones {
                    let _ = d.send(Ok(Delivery {
                        partition: self.partition,
                    }));
                }
            }
            Err(error) => {
                tracing::warn!(
                    partition = self.partition,
                    "{n} messages not delivered: {error}"
                );
                for d in batch.dones {
                    let _ = d.send(Err(error.clone()));
                }
                if let Some(cb) = &self.on_error {
                    cb(SendFailure {
                        error,
                        partition: self.partition,
                        messages: batch.messages,
                    });
                }
            }
        }
        self.outstanding.done(n);
        self.resolved.fetch_add(n as u64, Ordering::AcqRel);
    }

    fn fail(&self, (batch, error): (Vec<Pending>, Error)) {
        let n = batch.len();
        let mut messages = Vec::with_capacity(n);
        for (m, d, _p) in batch {
            let _ = d.send(Err(error.clone()));
            messages.push(m);
        }
        if let Some(cb) = &self.on_error {
            cb(SendFailure {
                error,
                partition: self.partition,
                messages,
            });
        }
        self.outstanding.done(n);
        self.resolved.fetch_add(n as u64, Ordering::AcqRel);
    }
}

/// Answers the flush markers whose preceding messages are all resolved.
fn answer_waiters(waiters: &mut Vec<(u64, oneshot::Sender<()>)>, resolved: u64) {
    let mut i = 0;
    while i < waiters.len() {
        if waiters[i].0 <= resolved {
            let (_, done) = waiters.swap_remove(i);
            let _ = done.send(());
        } else {
            i += 1;
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_answer(pipe: &mut Option<Pipeline>) -> Result<u32> {
    match pipe.as_mut() {
        Some(p) => p.answer().await,
        None => Err(Error::Disconnected("no connection".into())),
    }
}
