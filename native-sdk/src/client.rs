//! The connection to a server: framing, login, reconnection with backoff, a heartbeat, and a
//! typed async method for every command.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use wharf_protocol::requests::{
    ChangePassword, CreateConsumerGroup, CreatePartitions, CreatePersonalAccessToken, CreateStream,
    CreateTopic, CreateUser, DeleteConsumerGroup, DeleteConsumerOffset, DeletePartitions,
    DeletePersonalAccessToken, DeleteSegments, DeleteStream, DeleteTopic, DeleteUser,
    FlushUnsavedBuffer, GetClient, GetClients, GetConsumerGroup, GetConsumerGroups, GetConsumerLag,
    GetConsumerOffset, GetMe, GetMetricsSnapshot, GetPersonalAccessTokens, GetStats, GetStream,
    GetStreams, GetTopic, GetTopicConfig, GetTopicDurability, GetTopics, GetUser, GetUsers,
    JoinConsumerGroup, LeaveConsumerGroup, Limit, LoginUser, LoginWithPersonalAccessToken,
    LogoutUser, Ping, PollMessages, PurgeStream, PurgeTopic, SetTopicConfig, SetTopicDurability,
    StoreConsumerOffset, TopicConfigChange, UpdatePermissions, UpdateStream, UpdateTopic,
    UpdateUser, WirePermissions, MAX_GROUP_ID_LEN, MAX_SNAPSHOT_LAG_ROWS,
};
use wharf_protocol::responses::{
    decode_consumer_offset, decode_token_info, ClientWire, GroupWire, MetricsSnapshotWire,
    PartitionLagWire, PartitionWire, StatsWire, StreamWire, TopicConfigWire, TopicWire, UserWire,
};
use wharf_protocol::{
    codes, framing, Command, Consumer, Identifier, Partitioning, PollingStrategy, Reader,
};

use crate::error::{Error, Result};
use crate::message::{decode_polled, encode_send, Message, Polled};
use crate::tls::{self, Tls, TlsConfig, TlsError, Transport};

/// How to log in after connecting (and after every reconnect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No login: only `ping` works until you call a login method.
    None,
    /// Log in with a username and password.
    Password {
        /// The user's name.
        username: String,
        /// The user's password.
        password: String,
    },
    /// Log in with a personal access token.
    Token(String),
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the server.
    pub server: String,
    /// How to log in after every (re)connect.
    pub credentials: Credentials,
    /// Reconnect attempts before a call fails (`None`: keep trying).
    pub reconnect_retries: Option<u32>,
    /// First wait between reconnect attempts; doubles up to `reconnect_max_backoff`.
    pub reconnect_backoff: Duration,
    /// Longest wait between reconnect attempts.
    pub reconnect_max_backoff: Duration,
    /// Ping interval when idle; `None` for no heartbeat.
    pub heartbeat: Option<Duration>,
    /// How long a request may wait for its answer (and a TLS handshake for the server's).
    pub request_timeout: Duration,
    /// `Some`: connect over TLS with these settings; `None`: plain TCP.
    pub tls: Option<TlsConfig>,
}

impl ClientConfig {
    /// Settings for `server` with the defaults: no login, 5 reconnect attempts from 100 ms backoff, a 5 s heartbeat, a 30 s request timeout, plain TCP.
    pub fn new(server: impl Into<String>) -> ClientConfig {
        ClientConfig {
            server: server.into(),
            credentials: Credentials::None,
            reconnect_retries: Some(5),
            reconnect_backoff: Duration::from_millis(100),
            reconnect_max_backoff: Duration::from_secs(5),
            heartbeat: Some(Duration::from_secs(5)),
            request_timeout: Duration::from_secs(30),
            tls: None,
        }
    }

    /// Connects over TLS.
    pub fn with_tls(mut self, tls: TlsConfig) -> ClientConfig {
        self.tls = Some(tls);
        self
    }

    /// Logs in with a username and password.
    pub fn with_password(mut self, username: &str, password: &str) -> ClientConfig {
        self.credentials = Credentials::Password {
            username: username.into(),
            password: password.into(),
        };
        self
    }

    /// Logs in with a personal access token.
    pub fn with_token(mut self, token: &str) -> ClientConfig {
        self.credentials = Credentials::Token(token.into());
        self
    }
}

/// When a Wharf server acknowledges a write to a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Once written to the kernel: survives a killed server.
    Os,
    /// Once `fdatasync` covers it: survives power loss.
    Fsync,
}

/// Options of a new topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicOptions {
    /// µs; `None`: the server default.
    pub message_expiry: Option<u64>,
    /// Bytes; `None`: the server default.
    pub max_size: Option<u64>,
}

/// A lost connection, or the server's refusal of our TLS client certificate (which TLS 1.3
/// delivers on the first read after the handshake).
fn lost(e: std::io::Error) -> Error {
    match tls::client_certificate_refused(&e) {
        Some(refused) => Error::Tls(refused),
        None => Error::Disconnected(e.to_string()),
    }
}

/// Why a connection could not be opened.
enum OpenError {
    /// TCP connect failed: worth another attempt.
    Connect(std::io::Error),
    /// TLS could not be set up with the server: retrying will not help.
    Tls(TlsError),
}

/// One framed connection (plain or TLS); one request at a time.
#[derive(Debug)]
struct Connection {
    stream: Transport,
}

impl Connection {
    async fn open(
        addr: &str,
        tls: Option<&Tls>,
        timeout: Duration,
    ) -> std::result::Result<Connection, OpenError> {
        let tcp = TcpStream::connect(addr).await.map_err(OpenError::Connect)?;
        tcp.set_nodelay(true).map_err(OpenError::Connect)?;
        let stream = match tls {
            None => Transport::Plain(tcp),
            // Bounded: a server that does not speak TLS may just wait for more bytes.
            Some(tls) => match tokio::time::timeout(timeout, tls.handshake(tcp, addr)).await {
                Ok(Ok(stream)) => Transport::Tls(Box::new(stream)),
                Ok(Err(e)) => return Err(OpenError::Tls(e)),
                Err(_) => {
                    return Err(OpenError::Tls(TlsError::Handshake {
                        server: addr.into(),
                        reason: format!(
                            "no answer within {timeout:?} (does the server speak TLS there?)"
                        ),
                    }))
                }
            },
        };
        Ok(Connection { stream })
    }

    async fn request(&mut self, code: u32, payload: &[u8]) -> Result<Bytes> {
        let mut head = BytesMut::with_capacity(8);
        framing::encode_request(code, &[], &mut head);
        head[..4].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        if let Err(e) = self.write(&head, payload).await {
            return Err(self.write_failed(e).await);
        }
        let mut resp = [0u8; 8];
        self.stream.read_exact(&mut resp).await.map_err(lost)?;
        let status = u32::from_le_bytes([resp[0], resp[1], resp[2], resp[3]]);
        let len = u32::from_le_bytes([resp[4], resp[5], resp[6], resp[7]]) as usize;
        if status != 0 {
            return Err(Error::Server { code: status });
        }
        if len > 1 << 30 {
            // The body stays unread, so this connection cannot be used again.
            return Err(Error::Protocol(format!("answer of {len} bytes")));
        }
        read_body(&mut self.stream, len).await.map_err(lost)
    }

    async fn write(&mut self, head: &[u8], payload: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(head).await?;
        self.stream.write_all(payload).await?;
        // A no-op for TCP; TLS may hold the last record back until flushed.
        self.stream.flush().await
    }

    /// The error for a failed write. A TLS server that refuses our certificate sends an alert
    /// and closes, which the next write may meet as a broken pipe; the alert is still there to
    /// read and says what actually went wrong.
    async fn write_failed(&mut self, e: std::io::Error) -> Error {
        if matches!(self.stream, Transport::Tls(_)) {
            let mut byte = [0u8; 1];
            // Bounded although the peer has normally closed already, so the read ends at once.
            if let Ok(Err(read)) =
                tokio::time::timeout(Duration::from_secs(1), self.stream.read(&mut byte)).await
            {
                if let Some(refused) = tls::client_certificate_refused(&read) {
                    return Error::Tls(refused);
                }
            }
        }
        lost(e)
    }
}

/// An answer's body of `len` bytes (checked by the caller), read into a buffer that is not
/// zeroed first (most of a poll's answer is messages: zeroing it cost as much as reading it).
/// The buffer holds only what was read; an answer cut short is an error.
async fn read_body(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    len: usize,
) -> std::io::Result<Bytes> {
    let mut body = BytesMut::with_capacity(len);
    // Never past this answer: the next one's bytes stay in the stream.
    let mut answer = stream.take(len as u64);
    while body.len() < len {
        if answer.read_buf(&mut body).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(body.freeze())
}

/// A logged-in connection whose requests are pipelined: several may be written before their
/// answers are read. The server answers in order, so answers match requests first to last. A
/// reader task turns answer frames into statuses; the producer's workers use one pipeline each.
#[derive(Debug)]
pub(crate) struct Pipeline {
    writer: tls::WriteHalf,
    answers: tokio::sync::mpsc::UnboundedReceiver<Result<u32>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// Writes one request without waiting for its answer.
    pub(crate) async fn send(&mut self, code: u32, payload: &[u8]) -> Result<()> {
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        head[4..].copy_from_slice(&code.to_le_bytes());
        self.writer.write_all(&head).await.map_err(lost)?;
        self.writer.write_all(payload).await.map_err(lost)?;
        self.writer.flush().await.map_err(lost)
    }

    /// The status of the oldest unanswered request (0 = OK). Cancel-safe.
    pub(crate) async fn answer(&mut self) -> Result<u32> {
        self.answers
            .recv()
            .await
            .unwrap_or_else(|| Err(Error::Disconnected("connection closed".into())))
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_answers(
    mut reader: tls::ReadHalf,
    tx: tokio::sync::mpsc::UnboundedSender<Result<u32>>,
) {
    loop {
        let mut head = [0u8; 8];
        if let Err(e) = reader.read_exact(&mut head).await {
            let _ = tx.send(Err(lost(e)));
            return;
        }
        let status = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let mut len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        // Answers to sends carry no body; skip whatever there is without buffering it.
        let mut sink = [0u8; 4096];
        while len > 0 {
            let n = (len as usize).min(sink.len());
            if let Err(e) = reader.read_exact(&mut sink[..n]).await {
                let _ = tx.send(Err(lost(e)));
                return;
            }
            len -= n as u64;
        }
        if tx.send(Ok(status)).is_err() {
            return;
        }
    }
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    /// Made once from `config.tls`; every (re)connection and duplicate uses it.
    tls: Option<Tls>,
    conn: Mutex<Option<Connection>>,
    /// Reused for SendMessages requests.
    send_buffer: std::sync::Mutex<BytesMut>,
    heartbeat: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut h) = self.heartbeat.lock() {
            if let Some(h) = h.take() {
                h.abort();
            }
        }
    }
}

/// A client. Cheap to clone; clones share one connection (requests take turns on it).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A command's code and encoded payload, ready for [`Client::call_raw`].
fn encode_command<C: Command>(command: &C) -> (u32, BytesMut) {
    let mut payload = BytesMut::new();
    command.encode(&mut payload);
    (C::CODE, payload)
}

fn decode_all<T>(
    body: &[u8],
    mut one: impl FnMut(&mut Reader<'_>) -> std::result::Result<T, wharf_protocol::DecodeError>,
) -> Result<Vec<T>> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(one(&mut r)?);
    }
    Ok(out)
}

/// One topic config as the server describes it (Wharf's config commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigEntry {
    /// Kafka's name of the config.
    pub name: String,
    /// The value in force (the topic's own, or the default it follows).
    pub value: String,
    /// Kafka's name of where the value comes from.
    pub source: String,
}

/// A topic header followed by its partitions (GetTopic, CreateTopic).
fn topic_details(body: &[u8]) -> Result<(TopicWire, Vec<PartitionWire>)> {
    let mut r = Reader::new(body);
    let topic = TopicWire::decode(&mut r)?;
    let mut partitions = Vec::new();
    while r.remaining() > 0 {
        partitions.push(PartitionWire::decode(&mut r)?);
    }
    Ok((topic, partitions))
}

impl Client {
    /// Connects and logs in with the configured credentials.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let tls = match &config.tls {
            Some(settings) => Some(Tls::new(settings, &config.server)?),
            None => None,
        };
        Client::connect_with(config, tls).await
    }

    async fn connect_with(config: ClientConfig, tls: Option<Tls>) -> Result<Client> {
        let client = Client {
            inner: Arc::new(Inner {
                config,
                tls,
                conn: Mutex::new(None),
                send_buffer: std::sync::Mutex::default(),
                heartbeat: std::sync::Mutex::new(None),
            }),
        };
        {
            let mut conn = client.inner.conn.lock().await;
            *conn = Some(client.open_and_login().await?);
        }
        if let Some(every) = client.inner.config.heartbeat {
            let weak = Arc::downgrade(&client.inner);
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let c = Client { inner };
                    if let Err(e) = c.ping().await {
                        tracing::debug!("heartbeat failed: {e}");
                    }
                }
            });
            if let Ok(mut h) = client.inner.heartbeat.lock() {
                *h = Some(task);
            }
        }
        Ok(client)
    }

    /// A second, independent connection with the same settings (a producer worker uses one per
    /// partition so partitions are sent in parallel).
    pub async fn duplicate(&self) -> Result<Client> {
        let mut config = self.inner.config.clone();
        config.heartbeat = None;
        Client::connect_with(config, self.inner.tls.clone()).await
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    async fn open_and_login(&self) -> Result<Connection> {
        let cfg = &self.inner.config;
        let mut backoff = cfg.reconnect_backoff;
        let mut attempt = 0u32;
        let mut conn = loop {
            match Connection::open(&cfg.server, self.inner.tls.as_ref(), cfg.request_timeout).await
            {
                Ok(c) => break c,
                Err(OpenError::Tls(e)) => return Err(Error::Tls(e)),
                Err(OpenError::Connect(e)) => {
                    attempt += 1;
                    if cfg.reconnect_retries.is_some_and(|max| attempt > max) {
                        return Err(Error::Disconnected(format!(
                            "cannot connect to {}: {e}",
                            cfg.server
                        )));
                    }
                    tracing::debug!(
                        "connect to {} failed ({e}); retrying in {backoff:?}",
                        cfg.server
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(cfg.reconnect_max_backoff);
                }
            }
        };
        let login = match &cfg.credentials {
            Credentials::None => None,
            Credentials::Password { username, password } => Some(encode_command(&LoginUser {
                username: username.clone(),
                password: password.clone(),
                version: Some(concat!("wharf-sdk ", env!("CARGO_PKG_VERSION")).into()),
                context: None,
            })),
            Credentials::Token(token) => Some(encode_command(&LoginWithPersonalAccessToken {
                token: token.clone(),
            })),
        };
        if let Some((code, payload)) = login {
            conn.request(code, &payload).await?;
        }
        Ok(conn)
    }

    /// A new logged-in connection for pipelined requests.
    pub(crate) async fn pipeline(&self) -> Result<Pipeline> {
        let conn = self.open_and_login().await?;
        let (reader, writer) = conn.stream.into_split();
        let (tx, answers) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(read_answers(reader, tx));
        Ok(Pipeline {
            writer,
            answers,
            reader,
        })
    }

    /// Sends one request and returns the answer's payload. A broken connection is reopened (and
    /// logged in again) on the next call; the failed call reports `Disconnected`.
    pub async fn call_raw(&self, code: u32, payload: &[u8]) -> Result<Bytes> {
        let mut guard = self.inner.conn.lock().await;
        // The connection is taken out for the whole exchange and put back only once the answer
        // has been read: if this future is dropped half-way, the half-used stream is dropped
        // with it instead of handing the next caller someone else's answer.
        let mut conn = match guard.take() {
            Some(c) => c,
            None => self.open_and_login().await?,
        };
        let timeout = self.inner.config.request_timeout;
        let result = match tokio::time::timeout(timeout, conn.request(code, payload)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(timeout)),
        };
        // After a lost connection or a timeout the stream may be mid-frame: drop it.
        if !matches!(
            result,
            Err(Error::Disconnected(_) | Error::Timeout(_) | Error::Protocol(_) | Error::Tls(_))
        ) {
            *guard = Some(conn);
        }
        result
    }

    /// Sends one command and returns the answer's payload.
    async fn call<C: Command>(&self, command: C) -> Result<Bytes> {
        let (code, payload) = encode_command(&command);
        self.call_raw(code, &payload).await
    }

    /// Drops the connection (the next call reconnects). For tests of reconnection.
    pub async fn disconnect(&self) {
        *self.inner.conn.lock().await = None;
    }

    // ----- system -----

    /// Checks the server answers (works before login).
    pub async fn ping(&self) -> Result<()> {
        self.call(Ping).await.map(drop)
    }

    /// Logs this connection in; returns the user id.
    pub async fn login_user(&self, username: &str, password: &str) -> Result<u32> {
        let body = self
            .call(LoginUser {
                username: username.into(),
                password: password.into(),
                version: None,
                context: None,
            })
            .await?;
        Ok(Reader::new(&body).u32("user_id")?)
    }

    /// Logs this connection in with a personal access token; returns the user id.
    pub async fn login_with_token(&self, token: &str) -> Result<u32> {
        let body = self
            .call(LoginWithPersonalAccessToken {
                token: token.into(),
            })
            .await?;
        Ok(Reader::new(&body).u32("user_id")?)
    }

    /// Logs this connection out.
    pub async fn logout(&self) -> Result<()> {
        self.call(LogoutUser).await.map(drop)
    }

    /// Server statistics.
    pub async fn get_stats(&self) -> Result<StatsWire> {
        let body = self.call(GetStats).await?;
        Ok(StatsWire::decode(&mut Reader::new(&body))?)
    }

    /// Wharf only: how far consumer groups (Kafka's and Iggy's alike) are behind, per partition
    /// they have committed a position on: `group`'s, or every group's with `None`. Sorted by
    /// group, topic and partition; lag is Kafka's (end offset minus the committed next offset).
    /// Needs the `read_servers` permission.
    pub async fn consumer_lag(&self, group: Option<&str>) -> Result<Vec<PartitionLagWire>> {
        if let Some(g) = group {
            if g.is_empty() || g.len() > MAX_GROUP_ID_LEN {
                return Err(Error::InvalidInput(format!(
                    "a group id is 1..={MAX_GROUP_ID_LEN} bytes, not {}",
                    g.len()
                )));
            }
        }
        let body = self
            .call(GetConsumerLag {
                group: group.map(str::to_string),
            })
            .await?;
        decode_all(&body, PartitionLagWire::decode)
    }

    /// Wharf only: traffic totals of every topic, connections per door, process figures and
    /// the `lag_rows` group partitions with the largest lag (at most
    /// [`MAX_SNAPSHOT_LAG_ROWS`]), as `wharf top` shows them. Rates come from two snapshots:
    /// the difference of the totals over the difference of `uptime_us`. Needs the
    /// `read_servers` permission.
    pub async fn metrics_snapshot(&self, lag_rows: u32) -> Result<MetricsSnapshotWire> {
        if lag_rows > MAX_SNAPSHOT_LAG_ROWS {
            return Err(Error::InvalidInput(format!(
                "at most {MAX_SNAPSHOT_LAG_ROWS} lag rows, not {lag_rows}"
            )));
        }
        let body = self.call(GetMetricsSnapshot { lag_rows }).await?;
        Ok(MetricsSnapshotWire::decode(&mut Reader::new(&body))?)
    }

    /// This connection as the server sees it.
    pub async fn get_me(&self) -> Result<ClientWire> {
        let body = self.call(GetMe).await?;
        Ok(ClientWire::decode(&mut Reader::new(&body), true)?)
    }

    /// A connected client by id; `None` when there is none.
    pub async fn get_client(&self, client_id: u32) -> Result<Option<ClientWire>> {
        let body = self.call(GetClient { client_id }).await?;
        if body.is_empty() {
            return Ok(None);
        }
        Ok(Some(ClientWire::decode(&mut Reader::new(&body), true)?))
    }

    /// Every connected client.
    pub async fn get_clients(&self) -> Result<Vec<ClientWire>> {
        let body = self.call(GetClients).await?;
        decode_all(&body, |r| ClientWire::decode(r, false))
    }

    // ----- streams and topics -----

    /// Creates a stream; the server assigns its id.
    pub async fn create_stream(&self, name: &str) -> Result<StreamWire> {
        let body = self.call(CreateStream { name: name.into() }).await?;
        Ok(StreamWire::decode(&mut Reader::new(&body))?)
    }

    /// The stream and its topics; `None` when there is no such stream.
    pub async fn get_stream(
        &self,
        stream: &Identifier,
    ) -> Result<Option<(StreamWire, Vec<TopicWire>)>> {
        let body = self
            .call(GetStream {
                stream_id: stream.clone(),
            })
            .await?;
        if body.is_empty() {
            return Ok(None);
        }
        let mut r = Reader::new(&body);
        let s = StreamWire::decode(&mut r)?;
        let mut topics = Vec::new();
        while r.remaining() > 0 {
            topics.push(TopicWire::decode(&mut r)?);
        }
        Ok(Some((s, topics)))
    }

    /// Every stream you may read.
    pub async fn get_streams(&self) -> Result<Vec<StreamWire>> {
        let body = self.call(GetStreams).await?;
        decode_all(&body, StreamWire::decode)
    }

    /// Renames a stream.
    pub async fn update_stream(&self, stream: &Identifier, name: &str) -> Result<()> {
        self.call(UpdateStream {
            stream_id: stream.clone(),
            name: name.into(),
        })
        .await
        .map(drop)
    }

    /// Deletes a stream with its topics and messages.
    pub async fn delete_stream(&self, stream: &Identifier) -> Result<()> {
        self.call(DeleteStream {
            stream_id: stream.clone(),
        })
        .await
        .map(drop)
    }

    /// Deletes every message of every topic of a stream.
    pub async fn purge_stream(&self, stream: &Identifier) -> Result<()> {
        self.call(PurgeStream {
            stream_id: stream.clone(),
        })
        .await
        .map(drop)
    }

    /// Creates a topic with `partitions` partitions; returns it with its partitions.
    pub async fn create_topic(
        &self,
        stream: &Identifier,
        name: &str,
        partitions: u32,
        options: TopicOptions,
    ) -> Result<(TopicWire, Vec<PartitionWire>)> {
        let body = self
            .call(CreateTopic {
                stream_id: stream.clone(),
                partitions_count: partitions,
                compression: 1,
                message_expiry: options
                    .message_expiry
                    .map_or(Limit::ServerDefault, Limit::Value),
                max_topic_size: options.max_size.map_or(Limit::ServerDefault, Limit::Value),
                replication_factor: 1,
                name: name.into(),
            })
            .await?;
        topic_details(&body)
    }

    /// The topic and its partitions; `None` when there is no such topic.
    pub async fn get_topic(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Option<(TopicWire, Vec<PartitionWire>)>> {
        let body = self
            .call(GetTopic {
                stream_id: stream.clone(),
                topic_id: topic.clone(),
            })
            .await?;
        if body.is_empty() {
            return Ok(None);
        }
        topic_details(&body).map(Some)
    }

    /// The topics of a stream.
    pub async fn get_topics(&self, stream: &Identifier) -> Result<Vec<TopicWire>> {
        let body = self
            .call(GetTopics {
                stream_id: stream.clone(),
            })
            .await?;
        decode_all(&body, TopicWire::decode)
    }

    /// Renames a topic and sets its expiry and size limit.
    pub async fn update_topic(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        name: &str,
        options: TopicOptions,
    ) -> Result<()> {
        self.call(UpdateTopic {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            compression: 1,
            message_expiry: options
                .message_expiry
                .map_or(Limit::ServerDefault, Limit::Value),
            max_topic_size: options.max_size.map_or(Limit::ServerDefault, Limit::Value),
            replication_factor: 1,
            name: name.into(),
        })
        .await
        .map(drop)
    }

    /// Deletes a topic with its messages.
    pub async fn delete_topic(&self, stream: &Identifier, topic: &Identifier) -> Result<()> {
        self.call(DeleteTopic {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
        })
        .await
        .map(drop)
    }

    /// Deletes every message of a topic; offsets start again at 0.
    pub async fn purge_topic(&self, stream: &Identifier, topic: &Identifier) -> Result<()> {
        self.call(PurgeTopic {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
        })
        .await
        .map(drop)
    }

    /// Wharf only: a topic's durability, `None` when it follows the server default.
    pub async fn get_topic_durability(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Option<Durability>> {
        let body = self
            .call(GetTopicDurability {
                stream_id: stream.clone(),
                topic_id: topic.clone(),
            })
            .await?;
        Ok(match body.first() {
            Some(1) => Some(Durability::Os),
            Some(2) => Some(Durability::Fsync),
            _ => None,
        })
    }

    /// Wharf only: sets a topic's durability (`None`: the server default).
    pub async fn set_topic_durability(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        durability: Option<Durability>,
    ) -> Result<()> {
        let durability = match durability {
            None => 0,
            Some(Durability::Os) => 1,
            Some(Durability::Fsync) => 2,
        };
        self.call(SetTopicDurability {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            durability,
        })
        .await
        .map(drop)
    }

    /// Wharf only: a topic's configs under Kafka's names (`cleanup.policy`,
    /// `delete.retention.ms`, ...), each with its value and source (`DYNAMIC_TOPIC_CONFIG` when
    /// set on the topic, else `DEFAULT_CONFIG` or `STATIC_BROKER_CONFIG`).
    pub async fn get_topic_config(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Vec<TopicConfigEntry>> {
        let body = self
            .call(GetTopicConfig {
                stream_id: stream.clone(),
                topic_id: topic.clone(),
            })
            .await?;
        decode_all(&body, |r| {
            TopicConfigWire::decode(r).map(|w| TopicConfigEntry {
                name: w.name,
                value: w.value,
                source: w.source,
            })
        })
    }

    /// Wharf only: sets (`Some`) or resets to the default (`None`) some of a topic's configs,
    /// under Kafka's names and with Kafka's rules; the server checks them together and applies
    /// all or none. At most 64 changes, names of 1..=255 bytes, values of at most 1024 bytes.
    pub async fn set_topic_config(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        changes: &[(&str, Option<&str>)],
    ) -> Result<()> {
        let command = SetTopicConfig {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            changes: changes
                .iter()
                .map(|(name, value)| TopicConfigChange {
                    name: (*name).to_string(),
                    value: value.map(str::to_string),
                })
                .collect(),
        };
        // Refused here whole, never cut to the wire's limits.
        command
            .check()
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.call(command).await.map(drop)
    }

    /// Adds `count` partitions at the end of a topic.
    pub async fn create_partitions(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        count: u32,
    ) -> Result<()> {
        self.call(CreatePartitions {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            count,
        })
        .await
        .map(drop)
    }

    /// Removes the last `count` partitions of a topic, with their messages.
    pub async fn delete_partitions(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        count: u32,
    ) -> Result<()> {
        self.call(DeletePartitions {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            count,
        })
        .await
        .map(drop)
    }

    /// Deletes the `count` oldest sealed segments of a partition.
    pub async fn delete_segments(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: u32,
        count: u32,
    ) -> Result<()> {
        self.call(DeleteSegments {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            partition_id,
            count,
        })
        .await
        .map(drop)
    }

    // ----- messages -----

    /// Sends messages in one request; returns when the server has acknowledged them.
    pub async fn send_messages(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        partitioning: &Partitioning,
        messages: &[Message],
    ) -> Result<()> {
        if messages.is_empty() {
            return Err(Error::InvalidInput("no messages to send".into()));
        }
        for m in messages {
            m.validate()?;
        }
        // Encoded straight into a buffer kept between calls: a fresh megabyte per batch costs
        // more in page faults than the copy itself.
        let mut payload = self
            .inner
            .send_buffer
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        payload.clear();
        encode_send(stream, topic, partitioning, messages, &mut payload)?;
        let result = self
            .call_raw(codes::SEND_MESSAGES, &payload)
            .await
            .map(drop);
        if let Ok(mut keep) = self.inner.send_buffer.lock() {
            *keep = payload;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    /// Reads up to `count` messages from a partition (or, for a group member without a partition, from its next assigned one).
    pub async fn poll_messages(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: Option<u32>,
        consumer: &Consumer,
        strategy: PollingStrategy,
        count: u32,
        auto_commit: bool,
    ) -> Result<Polled> {
        let body = self
            .call(PollMessages {
                consumer: consumer.clone(),
                stream_id: stream.clone(),
                topic_id: topic.clone(),
                partition_id,
                strategy,
                count,
                auto_commit,
            })
            .await?;
        decode_polled(body)
    }

    /// Makes a partition's acknowledged messages durable (`fsync`).
    pub async fn flush_unsaved_buffer(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: u32,
        fsync: bool,
    ) -> Result<()> {
        self.call(FlushUnsavedBuffer {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            partition_id,
            fsync,
        })
        .await
        .map(drop)
    }

    // ----- consumer offsets -----

    /// Stores `offset` as the last consumed one.
    pub async fn store_consumer_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: Option<u32>,
        offset: u64,
    ) -> Result<()> {
        self.call(StoreConsumerOffset {
            consumer: consumer.clone(),
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            partition_id,
            offset,
        })
        .await
        .map(drop)
    }

    /// (partition's current offset, last consumed offset), or `None` when nothing is stored.
    pub async fn get_consumer_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: Option<u32>,
    ) -> Result<Option<(u64, u64)>> {
        let body = self
            .call(GetConsumerOffset {
                consumer: consumer.clone(),
                stream_id: stream.clone(),
                topic_id: topic.clone(),
                partition_id,
            })
            .await?;
        if body.is_empty() {
            return Ok(None);
        }
        let (_, current, stored) = decode_consumer_offset(&mut Reader::new(&body))?;
        Ok(Some((current, stored)))
    }

    /// Forgets a stored offset.
    pub async fn delete_consumer_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: Option<u32>,
    ) -> Result<()> {
        self.call(DeleteConsumerOffset {
            consumer: consumer.clone(),
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            partition_id,
        })
        .await
        .map(drop)
    }

    // ----- consumer groups -----

    /// Creates a consumer group on a topic; the server assigns its id.
    pub async fn create_consumer_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        name: &str,
    ) -> Result<GroupWire> {
        let body = self
            .call(CreateConsumerGroup {
                stream_id: stream.clone(),
                topic_id: topic.clone(),
                name: name.into(),
            })
            .await?;
        Ok(GroupWire::decode(&mut Reader::new(&body), true)?)
    }

    /// A consumer group with its members and their partitions; `None` when there is none.
    pub async fn get_consumer_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<Option<GroupWire>> {
        let body = self
            .call(GetConsumerGroup {
                stream_id: stream.clone(),
                topic_id: topic.clone(),
                group_id: group.clone(),
            })
            .await?;
        if body.is_empty() {
            return Ok(None);
        }
        Ok(Some(GroupWire::decode(&mut Reader::new(&body), true)?))
    }

    /// The consumer groups of a topic.
    pub async fn get_consumer_groups(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Vec<GroupWire>> {
        let body = self
            .call(GetConsumerGroups {
                stream_id: stream.clone(),
                topic_id: topic.clone(),
            })
            .await?;
        decode_all(&body, |r| GroupWire::decode(r, false))
    }

    /// Deletes a consumer group and its stored offsets.
    pub async fn delete_consumer_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<()> {
        self.call(DeleteConsumerGroup {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            group_id: group.clone(),
        })
        .await
        .map(drop)
    }

    /// Makes this connection a member; the server assigns it partitions.
    pub async fn join_consumer_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<()> {
        self.call(JoinConsumerGroup {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            group_id: group.clone(),
        })
        .await
        .map(drop)
    }

    /// Leaves a group; its partitions go to the other members.
    pub async fn leave_consumer_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<()> {
        self.call(LeaveConsumerGroup {
            stream_id: stream.clone(),
            topic_id: topic.clone(),
            group_id: group.clone(),
        })
        .await
        .map(drop)
    }

    // ----- users and tokens -----

    /// Creates a user.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        active: bool,
        permissions: Option<WirePermissions>,
    ) -> Result<UserWire> {
        let body = self
            .call(CreateUser {
                username: username.into(),
                password: password.into(),
                active,
                permissions,
            })
            .await?;
        Ok(UserWire::decode_details(&mut Reader::new(&body))?.0)
    }

    /// A user and its permissions; `None` when there is none.
    pub async fn get_user(
        &self,
        user: &Identifier,
    ) -> Result<Option<(UserWire, Option<WirePermissions>)>> {
        let body = self
            .call(GetUser {
                user_id: user.clone(),
            })
            .await?;
        if body.is_empty() {
            return Ok(None);
        }
        Ok(Some(UserWire::decode_details(&mut Reader::new(&body))?))
    }

    /// Every user.
    pub async fn get_users(&self) -> Result<Vec<UserWire>> {
        let body = self.call(GetUsers).await?;
        decode_all(&body, UserWire::decode)
    }

    /// Renames a user and/or (de)activates it.
    pub async fn update_user(
        &self,
        user: &Identifier,
        username: Option<&str>,
        active: Option<bool>,
    ) -> Result<()> {
        self.call(UpdateUser {
            user_id: user.clone(),
            username: username.map(Into::into),
            active,
        })
        .await
        .map(drop)
    }

    /// Replaces a user's permissions.
    pub async fn update_permissions(
        &self,
        user: &Identifier,
        permissions: Option<WirePermissions>,
    ) -> Result<()> {
        self.call(UpdatePermissions {
            user_id: user.clone(),
            permissions,
        })
        .await
        .map(drop)
    }

    /// Changes a password (the current one must be given).
    pub async fn change_password(&self, user: &Identifier, current: &str, new: &str) -> Result<()> {
        self.call(ChangePassword {
            user_id: user.clone(),
            current: current.into(),
            new: new.into(),
        })
        .await
        .map(drop)
    }

    /// Deletes a user and its tokens.
    pub async fn delete_user(&self, user: &Identifier) -> Result<()> {
        self.call(DeleteUser {
            user_id: user.clone(),
        })
        .await
        .map(drop)
    }

    /// Creates a token and returns it (the server keeps only its digest).
    pub async fn create_personal_access_token(
        &self,
        name: &str,
        expiry_us: Option<u64>,
    ) -> Result<String> {
        let body = self
            .call(CreatePersonalAccessToken {
                name: name.into(),
                expiry: expiry_us.map_or(Limit::Unlimited, Limit::Value),
            })
            .await?;
        Ok(Reader::new(&body).name("token")?)
    }

    /// (name, expiry µs timestamp) of each token.
    pub async fn get_personal_access_tokens(&self) -> Result<Vec<(String, Option<u64>)>> {
        let body = self.call(GetPersonalAccessTokens).await?;
        decode_all(&body, decode_token_info)
    }

    /// Deletes one of your personal access tokens.
    pub async fn delete_personal_access_token(&self, name: &str) -> Result<()> {
        self.call(DeletePersonalAccessToken { name: name.into() })
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    /// The bound: an answer's body is exactly its `len` bytes; the next answer's bytes stay in
    /// the stream.
    #[tokio::test]
    async fn an_answer_body_is_its_bytes_and_no_more() {
        let (mut client, mut server) = tokio::io::duplex(64);
        server.write_all(b"0123456789next!").await.unwrap();
        let body = read_body(&mut client, 10).await.unwrap();
        assert_eq!(&body[..], b"0123456789");
        assert!(read_body(&mut client, 0).await.unwrap().is_empty());
        let mut rest = [0u8; 5];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"next!");
    }

    /// An answer cut short (the server closed mid-body) is an error, never a body padded with
    /// bytes that were not read.
    #[tokio::test]
    async fn an_answer_cut_short_is_an_error() {
        let (mut client, mut server) = tokio::io::duplex(64);
        server.write_all(b"0123").await.unwrap();
        drop(server);
        let e = read_body(&mut client, 10).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
