//! Helpers for black-box tests: a real `wharf-server` on ephemeral loopback ports (native and
//! Kafka) with a temporary data directory, and certificates for TLS tests ([`TestCerts`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use iggy::prelude::{Client as _, IggyClient, UserClient as _};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use wharf_gateway::config::{Overrides, ServerConfig, TlsSettings};
use wharf_gateway::Running;

/// A server started for one test. Stop it with [`TestServer::stop`] (or let the test end).
#[derive(Debug)]
pub struct TestServer {
    /// The native (Iggy) listener.
    pub addr: SocketAddr,
    /// The Kafka listener.
    pub kafka_addr: SocketAddr,
    /// Every native listener, the main one (`addr`) first.
    pub native_listeners: Vec<SocketAddr>,
    /// Every Kafka listener, the main one (`kafka_addr`) first.
    pub kafka_listeners: Vec<SocketAddr>,
    /// The HTTP listener (`/metrics`), when the configuration turns it on.
    pub http_addr: Option<SocketAddr>,
    running: Option<Running>,
    data_dir: PathBuf,
    /// The configuration it runs with (restarts reuse it).
    config: ServerConfig,
    _temp: Option<tempfile::TempDir>,
}

/// The test configuration: ephemeral loopback ports, `data_dir`, quick group formation.
pub fn test_config(data_dir: &Path) -> ServerConfig {
    test_config_from(data_dir, None)
}

/// The test configuration with `toml`, a fragment of `configs/server.toml` (sections and keys
/// as documented there), merged over it: for settings a test names as an operator would. A key
/// the server does not know fails the test.
pub fn test_config_with_toml(data_dir: &Path, toml: &str) -> ServerConfig {
    let file = tempfile::NamedTempFile::new().expect("temp config file");
    std::fs::write(file.path(), toml).expect("write the config fragment");
    test_config_from(data_dir, Some(file.path()))
}

fn test_config_from(data_dir: &Path, config_file: Option<&Path>) -> ServerConfig {
    let overrides = Overrides {
        config_file: config_file.map(Path::to_path_buf),
        data_dir: Some(data_dir.to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        http_addr: None,
    };
    let mut config =
        ServerConfig::load_from(&overrides, &[]).unwrap_or_else(|e| panic!("test config: {e}"));
    // Groups form at once, and tests may ask for short sessions so a killed member is noticed
    // in seconds rather than Kafka's default minimum of 6.
    config.kafka.groups.initial_rebalance_delay = std::time::Duration::ZERO;
    config.kafka.groups.min_session_timeout = std::time::Duration::from_millis(1000);
    config
}

impl TestServer {
    /// Starts a server with a fresh temporary data directory.
    pub async fn start() -> TestServer {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut s = TestServer::start_in(temp.path()).await;
        s._temp = Some(temp);
        s
    }

    /// Starts a server with a fresh temporary data directory and the test configuration as
    /// changed by `tweak` (for small limits and timeouts).
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(temp.path());
        tweak(&mut config);
        let mut s = TestServer::start_config(config).await;
        s._temp = Some(temp);
        s
    }

    /// Starts a server on an existing data directory (to test restarts).
    pub async fn start_in(data_dir: &Path) -> TestServer {
        TestServer::start_config(test_config(data_dir)).await
    }

    /// Starts a server with `config`, on its data directory (kept when the server stops).
    pub async fn start_config(config: ServerConfig) -> TestServer {
        let running = wharf_gateway::start(config.clone())
            .await
            .expect("server starts");
        TestServer {
            addr: running.native_addr,
            kafka_addr: running.kafka_addr,
            native_listeners: running.native_listeners.clone(),
            kafka_listeners: running.kafka_listeners.clone(),
            http_addr: running.http_addr,
            running: Some(running),
            data_dir: config.data_dir.clone(),
            config,
            _temp: None,
        }
    }

    /// The server's request budget and its gauges (bytes granted now, peak, waiters).
    pub fn request_budget(&self) -> &wharf_gateway::server::budget::RequestBudget {
        &self
            .running
            .as_ref()
            .expect("the server is running")
            .request_budget
    }

    /// librdkafka settings for this server's Kafka listener (IPv4, a 30 s message timeout).
    pub fn kafka_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.kafka_addr.to_string())
            .set("broker.address.family", "v4")
            .set("message.timeout.ms", "30000");
        c
    }

    /// Creates a topic through librdkafka's admin API, failing the test with the reason if it
    /// cannot (within 60 s).
    pub async fn create_kafka_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.kafka_config().create().expect("admin client");
        let results = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            admin.create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            ),
        )
        .await
        .expect("topic created within 60 s")
        .expect("CreateTopics answered");
        if let Some(Err((topic, e))) = results.first() {
            panic!("cannot create topic {topic}: {e}");
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server cleanly, keeping its data directory.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops the server and starts a new one on the same data directory and a new port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = wharf_gateway::start(self.config.clone())
            .await
            .expect("server restarts");
        self.addr = running.native_addr;
        self.kafka_addr = running.kafka_addr;
        self.native_listeners = running.native_listeners.clone();
        self.kafka_listeners = running.kafka_listeners.clone();
        self.http_addr = running.http_addr;
        self.running = Some(running);
    }
}

/// How long one step of a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// Awaits `f`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

/// The official `iggy` client, connected to `server`'s native door and logged in as root.
pub async fn iggy_root_client(server: &TestServer) -> IggyClient {
    iggy_root_client_at(server.addr).await
}

/// The official `iggy` client, connected to the native door at `native` (a server this test
/// process did not start, such as a child process) and logged in as root.
pub async fn iggy_root_client_at(native: SocketAddr) -> IggyClient {
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(native.to_string())
        .with_no_delay()
        .build()
        .expect("iggy client");
    within("connect", client.connect())
        .await
        .expect("iggy client connects");
    within(
        "login",
        client.login_user(
            iggy::prelude::DEFAULT_ROOT_USERNAME,
            iggy::prelude::DEFAULT_ROOT_PASSWORD,
        ),
    )
    .await
    .expect("iggy root login");
    client
}

/// Creates stream `stream` and its topic `topic` of `partitions` partitions (no compression, no
/// expiry, the server's default size limit) through the official client, failing the test if
/// either is refused.
pub async fn create_stream_with_topic(
    client: &IggyClient,
    stream: &str,
    topic: &str,
    partitions: u32,
) {
    use iggy::prelude::{
        CompressionAlgorithm, Identifier, IggyExpiry, MaxTopicSize, StreamClient as _,
        TopicClient as _,
    };
    within("create stream", client.create_stream(stream))
        .await
        .expect("stream created");
    let stream_id = Identifier::named(stream).expect("a valid stream name");
    within(
        "create topic",
        client.create_topic(
            &stream_id,
            topic,
            partitions,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        ),
    )
    .await
    .expect("topic created");
}

/// A native request frame (length, command code, payload), for tests that speak the wire by hand.
pub fn native_frame(code: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    wharf_protocol::framing::encode_request(code, payload, &mut b);
    b.to_vec()
}

/// A native LoginUser frame for the test server's root user (`iggy`/`iggy`), in the oldest
/// layout (no version or context).
pub fn root_login_frame() -> Vec<u8> {
    let mut p = Vec::new();
    for s in ["iggy", "iggy"] {
        p.push(s.len() as u8);
        p.extend_from_slice(s.as_bytes());
    }
    native_frame(wharf_protocol::codes::LOGIN_USER, &p)
}

/// Certificates for TLS tests, made in the test (never committed) as PEM files in a temporary
/// directory: a CA, a server certificate for `localhost` and 127.0.0.1 signed by it, and a
/// client certificate (for mutual TLS) signed by it.
#[derive(Debug)]
pub struct TestCerts {
    /// The CA certificate: clients trust it, and with mutual TLS the server checks clients
    /// against it.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wharf test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("certificate params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &ca).expect("certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            Vec::new(),
            "wharf test client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        TestCerts {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            _dir: dir,
        }
    }

    /// The server's TLS settings; with `mutual`, clients must present a certificate of the CA.
    pub fn tls_settings(&self, mutual: bool) -> TlsSettings {
        TlsSettings {
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            client_ca_file: mutual.then(|| self.ca.clone()),
        }
    }

    /// A path as a string, for client options that take one.
    pub fn path(p: &Path) -> String {
        p.display().to_string()
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        TestCerts::new()
    }
}

/// One Kafka connection speaking raw frames, with the `kafka-protocol` crate as the client: for
/// tests that need what no Kafka client sends (a request before SASL, a given version) or that
/// check what a client would hide (an error code, a close).
#[derive(Debug)]
pub struct KafkaWire {
    pub stream: tokio::net::TcpStream,
    correlation: i32,
}

impl KafkaWire {
    pub async fn open(addr: SocketAddr) -> KafkaWire {
        let stream = within("connect", tokio::net::TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        KafkaWire {
            stream,
            correlation: 0,
        }
    }

    /// Sends `req` as API `key` at `version`.
    pub async fn send<R: Encodable + HeaderVersion>(&mut self, key: ApiKey, version: i16, req: &R) {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("compat-test")))
            .encode(&mut buf, R::header_version(version))
            .expect("encodable request header");
        req.encode(&mut buf, version).expect("encodable request");
        let mut out = BytesMut::new();
        out.put_i32(buf.len() as i32);
        out.put_slice(&buf);
        within("send", self.stream.write_all(&out))
            .await
            .expect("request sent");
    }

    /// Reads one answer frame; `None` when the server closed the connection.
    pub async fn read(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        within("an answer or a close", self.stream.read_exact(&mut len))
            .await
            .ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        within("the rest of an answer", self.stream.read_exact(&mut body))
            .await
            .ok()?;
        Some(Bytes::from(body))
    }

    /// Sends `req` and decodes its answer, checking the correlation id and that nothing is left.
    pub async fn call<R, T>(&mut self, key: ApiKey, version: i16, req: &R) -> T
    where
        R: Encodable + HeaderVersion,
        T: Decodable + HeaderVersion,
    {
        self.send(key, version, req).await;
        let mut answer = self
            .read()
            .await
            .unwrap_or_else(|| panic!("{key:?}: the server closed the connection"));
        let header = ResponseHeader::decode(&mut answer, T::header_version(version))
            .unwrap_or_else(|e| panic!("{key:?} v{version}: answer header: {e}"));
        assert_eq!(header.correlation_id, self.correlation);
        let body = T::decode(&mut answer, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: answer: {e}"));
        assert_eq!(answer.remaining(), 0, "{key:?} v{version}: bytes left over");
        body
    }

    /// Sends `req` and checks that the server closes the connection without an answer.
    pub async fn refused<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) {
        self.send(key, version, req).await;
        assert!(self.read().await.is_none(), "{key:?} was answered");
    }

    /// Checks that the connection is closed (the server sent nothing more).
    pub async fn closed(&mut self) {
        assert!(self.read().await.is_none(), "the connection is still open");
    }

    /// Authenticates as `user` with SASL/PLAIN (SaslHandshake v1, SaslAuthenticate v2).
    pub async fn sasl_plain(&mut self, user: &str, password: &str) {
        use kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
            SaslHandshakeResponse,
        };
        let hs: SaslHandshakeResponse = self
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            )
            .await;
        assert_eq!(hs.error_code, 0);
        let auth: SaslAuthenticateResponse = self
            .call(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default()
                    .with_auth_bytes(Bytes::from(format!("\0{user}\0{password}"))),
            )
            .await;
        assert_eq!(auth.error_code, 0, "{:?}", auth.error_message);
    }
}

/// An uncompressed record batch (magic 2) of the given (key, value) records, offsets from 0,
/// timestamps 1_700_000_000_000 + i, no producer: what a plain producer sends.
pub fn record_batch(records: impl IntoIterator<Item = (Option<Bytes>, Option<Bytes>)>) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key,
            value,
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("an uncompressed batch encodes");
    buf.freeze()
}

/// The third-party Kafka client programs in `compat-tests/kafka-clients/`, run as processes
/// with the clients `scripts/kafka-clients` installs under `target/kafka-clients/`.
pub mod client_programs {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// The workspace's root folder.
    pub fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("compat-tests lives in the workspace")
            .to_path_buf()
    }

    /// `path`, which `scripts/kafka-clients` must have installed.
    pub fn installed(path: &Path) -> PathBuf {
        assert!(
            path.exists(),
            "{} is missing: run scripts/kafka-clients first (scripts/test does)",
            path.display()
        );
        path.to_path_buf()
    }

    /// The venv's Python, with confluent-kafka and kafka-python.
    pub fn python() -> PathBuf {
        installed(&repo().join("target/kafka-clients/venv/bin/python"))
    }

    /// Node with kafkajs: the interpreter and the environment that finds its modules.
    pub fn node() -> (PathBuf, Vec<(String, OsString)>) {
        let modules = installed(&repo().join("target/kafka-clients/node/node_modules"));
        (
            PathBuf::from("node"),
            vec![("NODE_PATH".into(), modules.into())],
        )
    }

    /// Runs `program` (a file in `compat-tests/kafka-clients/`) with `interpreter`, the bootstrap
    /// address as its argument and `env`, for at most `limit`; fails the test unless it
    /// succeeds, showing its output.
    pub async fn run(
        program: &str,
        interpreter: &Path,
        bootstrap: &str,
        env: &[(String, OsString)],
        limit: Duration,
    ) {
        let script = repo().join("compat-tests/kafka-clients").join(program);
        let mut cmd = tokio::process::Command::new(interpreter);
        cmd.arg(&script).arg(bootstrap).kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{program} did not finish within {limit:?}"))
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}");
        assert!(
            out.status.success(),
            "{program} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
}

/// A server in a process of its own, so that a test can SIGKILL it for real: the test binary
/// runs itself with `--exact <test> --ignored`, and that ignored test (which calls
/// [`serve_as_child_process`]) prints the Kafka address and serves until killed.
pub mod child_server {
    use std::ffi::OsStr;
    use std::io::{BufRead, BufReader};
    use std::net::SocketAddr;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    use wharf_gateway::config::ServerConfig;

    use crate::{TestServer, WAIT};

    /// Starts this test binary's ignored test `test` as a server process on the data directory
    /// `dir`, passed in the environment variable `dir_var`. Returns it and its Kafka address.
    pub fn spawn(test: &str, dir_var: &str, dir: &Path) -> (Child, SocketAddr) {
        spawn_with_env(test, &[(dir_var, dir.as_os_str())])
    }

    /// [`spawn`] with any environment variables `env` (the data directory and whatever else the
    /// ignored test `test` reads to build its configuration).
    pub fn spawn_with_env(test: &str, env: &[(&str, &OsStr)]) -> (Child, SocketAddr) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server process starts");
        let stdout = child.stdout.take().expect("the server process's stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest's "test <name> ... " may start the same line.
                if let Some(addr) = line.split("KAFKA_ADDR ").nth(1) {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("the server process did not print its Kafka address");
        (child, addr.parse().expect("a socket address"))
    }

    /// The body of the ignored test that [`spawn`] runs: serves `config` and prints its Kafka
    /// address, until killed or until its standard input closes (should the test itself die).
    pub async fn serve_as_child_process(config: ServerConfig) {
        let server = TestServer::start_config(config).await;
        println!("KAFKA_ADDR {}", server.kafka_addr);
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await
        .expect("the stdin watcher");
        drop(server);
    }
}

/// splitmix64: the random choices of a test (kill points, writes) from a seed that the test
/// prints, so that a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The seed in the environment variable `var` (a replay), else `default`.
pub fn seed_from_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{var}={s} is not a number")),
        Err(_) => default,
    }
}

/// An S3-compatible server for the tiered storage tests: moto's server mode (installed into the
/// clients' venv by `scripts/test`), run by `compat-tests/programs/s3_server.py` on a loopback
/// port with one bucket. [`S3Server::stop`] and [`S3Server::start_again`] take it down and
/// bring it back on the same port with the same objects (they live in the program's memory);
/// dropping it ends the program.
#[derive(Debug)]
pub struct S3Server {
    /// The loopback port it listens on (kept across a stop and start).
    pub port: u16,
    /// The bucket it holds, made at start.
    pub bucket: String,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    answers: std::sync::mpsc::Receiver<String>,
}

impl S3Server {
    /// The credentials the program's bucket was made with (moto accepts any).
    pub const ACCESS_KEY: &'static str = "wharf-test";
    pub const SECRET_KEY: &'static str = "wharf-test-secret";
    pub const REGION: &'static str = "us-east-1";

    /// Starts the server with the bucket `wharf-test`, failing the test if it is not serving
    /// within [`WAIT`].
    pub fn start() -> S3Server {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let bucket = "wharf-test".to_string();
        let script = client_programs::repo().join("compat-tests/programs/s3_server.py");
        let mut child = Command::new(client_programs::python())
            .arg(&script)
            .arg(&bucket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // moto logs every request; a failing test shows the server's own view anyway.
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("the S3 server's stdout");
        let (tx, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut server = S3Server {
            port: 0,
            bucket,
            child,
            stdin,
            answers,
        };
        let first = server.answer("printing its port");
        server.port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the S3 server printed {first:?}, not PORT <n>"));
        server
    }

    /// The next line the program prints, within [`WAIT`].
    fn answer(&mut self, what: &str) -> String {
        match self.answers.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                panic!(
                    "the S3 server exited ({status:?}) before {what}: is moto installed in \
                     target/kafka-clients/venv? (scripts/test installs it)"
                )
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("the S3 server did not answer within {WAIT:?}: {what}")
            }
        }
    }

    fn command(&mut self, command: &str, expect: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the S3 server's stdin");
        writeln!(stdin, "{command}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot tell the S3 server to {command}: {e}"));
        let line = self.answer(command);
        assert_eq!(line, expect, "the S3 server's answer to {command}");
    }

    /// Takes the server down: its port refuses connections until [`S3Server::start_again`].
    pub fn stop(&mut self) {
        self.command("stop", "STOPPED");
    }

    /// Brings the server back on the same port, with every object it held.
    pub fn start_again(&mut self) {
        self.command("start", "STARTED");
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The connection settings of the remote tier for this server's bucket (path-style, plain
    /// HTTP), keys under `prefix`, each request bounded by `request_timeout`.
    pub fn remote_config(
        &self,
        prefix: &str,
        request_timeout: Duration,
    ) -> wharf_log_store::remote::RemoteConfig {
        use wharf_log_store::remote::{RemoteConfig, RemoteKind};
        let mut kind = RemoteKind::S3(Default::default());
        if let RemoteKind::S3(s3) = &mut kind {
            s3.bucket = self.bucket.clone();
            s3.region = Some(Self::REGION.into());
            s3.endpoint = Some(self.endpoint());
            s3.access_key_id = Some(Self::ACCESS_KEY.into());
            s3.secret_access_key = Some(Self::SECRET_KEY.into());
            s3.path_style = true;
            s3.allow_http = true;
        }
        RemoteConfig {
            kind,
            prefix: prefix.into(),
            request_timeout,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The remote tier's own client on this server's bucket, under `prefix`: what a test uses
    /// to see what the server uploaded.
    pub fn remote(&self, prefix: &str) -> wharf_log_store::remote::ObjectStoreRemote {
        wharf_log_store::remote::ObjectStoreRemote::open(
            self.remote_config(prefix, Duration::from_secs(10)),
        )
        .unwrap_or_else(|e| panic!("an object store client for {}: {e}", self.endpoint()))
    }

    /// Every key under `prefix` in the bucket, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        use wharf_log_store::remote::RemoteStore as _;
        let mut keys = self
            .remote("")
            .list(prefix)
            .unwrap_or_else(|e| panic!("listing {prefix} in the test bucket: {e}"));
        keys.sort();
        keys
    }

    /// A `[remote_storage]` section of `configs/server.toml` for this server (keys under
    /// `prefix`), with `extra` lines (`key = value`) added: for [`test_config_with_toml`].
    pub fn config_toml(&self, prefix: &str, extra: &str) -> String {
        remote_storage_toml(self.port, &self.bucket, prefix, extra)
    }
}

/// A `[remote_storage]` section for the S3 server of [`S3Server`] on `port` with `bucket` (keys
/// under `prefix`, `extra` lines added): also for a server process that has only the port.
pub fn remote_storage_toml(port: u16, bucket: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[remote_storage]\n\
         enable = true\n\
         kind = \"s3\"\n\
         bucket = \"{bucket}\"\n\
         region = \"{region}\"\n\
         endpoint = \"http://127.0.0.1:{port}\"\n\
         access_key_id = \"{key}\"\n\
         secret_access_key = \"{secret}\"\n\
         path_style = true\n\
         allow_http = true\n\
         prefix = \"{prefix}\"\n\
         {extra}\n",
        region = S3Server::REGION,
        key = S3Server::ACCESS_KEY,
        secret = S3Server::SECRET_KEY,
    )
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Closing stdin ends the program; the kill covers a program that hangs.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test configuration with the remote tier on `s3` (keys under `prefix`) and `extra`
/// `[remote_storage]` lines, for example a short `task_interval`.
pub fn test_config_with_remote(
    data_dir: &Path,
    s3: &S3Server,
    prefix: &str,
    extra: &str,
) -> ServerConfig {
    test_config_with_toml(data_dir, &s3.config_toml(prefix, extra))
}
