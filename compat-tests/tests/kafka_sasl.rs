//! SASL on the Kafka door against real clients: librdkafka (`rdkafka`) with PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512 as users of the native door (official `iggy` SDK), personal
//! access tokens as PLAIN passwords, users made from Kafka with AlterUserScramCredentials,
//! re-authentication (KIP-368), the login limiter shared with native logins, and sessions ended
//! by a native password change. Raw requests (the `kafka-protocol` crate as the client) check
//! the answers and closes Kafka's clients rely on.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use compat_tests::{iggy_root_client, within, KafkaWire, TestServer};
use iggy::prelude::{
    Client as _, GlobalPermissions, Identifier, IggyClient, PersonalAccessTokenClient as _,
    PersonalAccessTokenExpiry, SystemClient as _, UserClient as _, UserStatus,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::AsyncWriteExt;
use wharf_gateway::broker::scram::ScramMechanism;
use wharf_gateway::config::KafkaAuthentication;

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
const SASL_AUTHENTICATION_FAILED: i16 = 58;

async fn sasl_server(tweak: impl FnOnce(&mut wharf_gateway::config::ServerConfig)) -> TestServer {
    TestServer::start_with(|c| {
        c.kafka.authentication = KafkaAuthentication::Sasl;
        tweak(c);
    })
    .await
}

/// librdkafka settings for SASL_PLAINTEXT with `mechanism` as `user`.
fn sasl(server: &TestServer, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = server.kafka_config();
    c.set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password);
    c
}

/// Creates `name` (native user) with every right on streams and topics, none on users.
async fn create_user(root: &IggyClient, name: &str, password: &str) {
    let global = GlobalPermissions {
        manage_servers: false,
        read_servers: true,
        manage_users: false,
        read_users: false,
        manage_streams: true,
        read_streams: true,
        manage_topics: true,
        read_topics: true,
        poll_messages: true,
        send_messages: true,
    };
    let permissions = iggy::prelude::Permissions {
        global,
        streams: None,
    };
    within(
        "create user",
        root.create_user(name, password, UserStatus::Active, Some(permissions)),
    )
    .await
    .unwrap();
}

async fn native_client(server: &TestServer) -> IggyClient {
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(server.addr.to_string())
        .build()
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    client
}

/// Records librdkafka's error callbacks and statistics.
#[derive(Default, Clone)]
struct Recorder {
    errors: Arc<Mutex<Vec<KafkaError>>>,
    stats: Arc<Mutex<Option<Statistics>>>,
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, _reason: &str) {
        self.errors.lock().unwrap().push(error);
    }
    fn stats(&self, statistics: Statistics) {
        *self.stats.lock().unwrap() = Some(statistics);
    }
}

impl rdkafka::consumer::ConsumerContext for Recorder {}

impl Recorder {
    fn authentication_failed(&self) -> bool {
        self.errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| *e == KafkaError::Global(RDKafkaErrorCode::Authentication))
    }
}

/// Produces `n` records to partition 0 of `topic` and waits for each delivery.
async fn produce(producer: &FutureProducer<Recorder>, topic: &str, tag: &str, n: usize) {
    for i in 0..n {
        let value = format!("{tag}-{i}");
        within(
            "delivery",
            producer.send(
                FutureRecord::to(topic)
                    .partition(0)
                    .key("k")
                    .payload(&value),
                Duration::from_secs(30),
            ),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
}

/// Reads partition 0 of `topic` from the start until `want` values came back.
fn consume(config: &ClientConfig, topic: &str, want: usize) -> Vec<String> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "sasl-test-no-commits")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + compat_tests::WAIT;
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {want} records read from {topic}",
            got.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    got
}

/// Creates a one-partition topic as root over SASL/SCRAM-SHA-512.
async fn create_topic(server: &TestServer, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = sasl(server, "SCRAM-SHA-512", "iggy", "iggy")
        .create_with_context(Recorder::default())
        .unwrap();
    let results = within(
        "create topic",
        admin.create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ),
    )
    .await
    .unwrap();
    results[0].as_ref().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_and_consumes_with_every_mechanism_as_native_users_and_root() {
    let server = sasl_server(|_| {}).await;
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;
    let topic = "sasl-orders";
    create_topic(&server, topic).await;
    let mut expected = Vec::new();
    for mechanism in MECHANISMS {
        for (user, password) in [("alice", "alice-pw"), ("iggy", "iggy")] {
            let config = sasl(&server, mechanism, user, password);
            let producer: FutureProducer<Recorder> =
                config.create_with_context(Recorder::default()).unwrap();
            let tag = format!("{mechanism}-{user}");
            produce(&producer, topic, &tag, 2).await;
            expected.extend((0..2).map(|i| format!("{tag}-{i}")));
            let got = consume(&config, topic, expected.len());
            assert_eq!(got, expected, "{mechanism} as {user}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_with_librdkafkas_authentication_error() {
    let server = sasl_server(|_| {}).await;
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;
    for mechanism in ["PLAIN", "SCRAM-SHA-512"] {
        let recorder = Recorder::default();
        let producer: FutureProducer<Recorder> = sasl(&server, mechanism, "alice", "wrong")
            .create_with_context(recorder.clone())
            .unwrap();
        let deadline = std::time::Instant::now() + compat_tests::WAIT;
        while !recorder.authentication_failed() {
            assert!(
                std::time::Instant::now() < deadline,
                "{mechanism}: no authentication error, only {:?}",
                recorder.errors.lock().unwrap()
            );
            // Drives librdkafka's callbacks; the error comes from its own connection attempt.
            let _ = tokio::task::block_in_place(|| {
                producer
                    .client()
                    .fetch_metadata(None, Duration::from_millis(500))
            });
        }
    }
}

/// One Kafka connection speaking raw frames ([`KafkaWire`]), with this file's requests.
struct Conn(KafkaWire);

impl std::ops::Deref for Conn {
    type Target = KafkaWire;
    fn deref(&self) -> &KafkaWire {
        &self.0
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut KafkaWire {
        &mut self.0
    }
}

impl Conn {
    async fn open(server: &TestServer) -> Conn {
        Conn(KafkaWire::open(server.kafka_addr).await)
    }

    async fn handshake(&mut self, mechanism: &str) -> SaslHandshakeResponse {
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        self.call(ApiKey::SaslHandshake, 1, &req).await
    }

    async fn authenticate(&mut self, version: i16, bytes: Vec<u8>) -> SaslAuthenticateResponse {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        self.call(ApiKey::SaslAuthenticate, version, &req).await
    }

    /// SASL/PLAIN as `user`, at SaslAuthenticate `version`.
    async fn plain(
        &mut self,
        user: &str,
        password: &str,
        version: i16,
    ) -> SaslAuthenticateResponse {
        let hs = self.handshake("PLAIN").await;
        assert_eq!(hs.error_code, 0);
        self.authenticate(version, format!("\0{user}\0{password}").into_bytes())
            .await
    }

    async fn metadata(&mut self) -> MetadataResponse {
        self.call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await
    }
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sasl_pair_and_api_versions_are_served_before_authentication() {
    let server = sasl_server(|_| {}).await;
    // ApiVersions is answered and advertises the SASL pair.
    let mut conn = Conn::open(&server).await;
    let versions: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let range = |k: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::SaslHandshake), Some((1, 1)));
    assert_eq!(range(ApiKey::SaslAuthenticate), Some((0, 2)));
    // Anything else closes the connection without an answer.
    conn.refused(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    // So does a request between the handshake and the authentication.
    let mut conn = Conn::open(&server).await;
    let hs = conn.handshake("SCRAM-SHA-256").await;
    assert_eq!(hs.error_code, 0);
    let names: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, MECHANISMS);
    conn.refused(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM (33), then the close.
    let mut conn = Conn::open(&server).await;
    let hs = conn.handshake("GSSAPI").await;
    assert_eq!(hs.error_code, 33);
    conn.closed().await;
    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE (34), then the close.
    let mut conn = Conn::open(&server).await;
    let answer = conn.authenticate(1, b"\0iggy\0iggy".to_vec()).await;
    assert_eq!(answer.error_code, 34);
    conn.closed().await;
    // Authenticated, the principal is served.
    let mut conn = Conn::open(&server).await;
    let answer = conn.plain("iggy", "iggy", 2).await;
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    assert_eq!(answer.session_lifetime_ms, 0, "no connections_max_reauth");
    conn.metadata().await;

    // On a listener without authentication, the SASL pair is ILLEGAL_SASL_STATE, as Kafka.
    let open = TestServer::start().await;
    let mut conn = Conn::open(&open).await;
    let hs = conn.handshake("PLAIN").await;
    assert_eq!(hs.error_code, 34);
    conn.metadata().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_authentication_is_answered_58_then_closed() {
    let server = sasl_server(|_| {}).await;
    let mut conn = Conn::open(&server).await;
    let answer = conn.plain("iggy", "wrong", 1).await;
    assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(answer.error_message.is_some());
    conn.closed().await;
    // SCRAM for a user who does not exist: a salt is shown like any user's, and the same one
    // each time; the exchange fails only at the proof.
    let salt = |first: &[u8]| {
        String::from_utf8(first.to_vec())
            .unwrap()
            .split(',')
            .find_map(|a| a.strip_prefix("s=").map(str::to_string))
            .unwrap()
    };
    let mut salts = Vec::new();
    for _ in 0..2 {
        let mut conn = Conn::open(&server).await;
        assert_eq!(conn.handshake("SCRAM-SHA-256").await.error_code, 0);
        let first = conn
            .authenticate(1, b"n,,n=ghost,r=0123456789abcdef".to_vec())
            .await;
        assert_eq!(first.error_code, 0);
        salts.push(salt(&first.auth_bytes));
    }
    assert_eq!(salts[0], salts[1]);
    // Delegation tokens are refused.
    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.handshake("SCRAM-SHA-256").await.error_code, 0);
    let answer = conn
        .authenticate(1, b"n,,n=iggy,r=abc,tokenauth=true".to_vec())
        .await;
    assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
    conn.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_access_token_is_a_plain_password_of_its_user_only() {
    let server = sasl_server(|_| {}).await;
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;
    let alice = native_client(&server).await;
    within("login", alice.login_user("alice", "alice-pw"))
        .await
        .unwrap();
    let token = within(
        "create token",
        alice.create_personal_access_token("kafka-token", PersonalAccessTokenExpiry::NeverExpire),
    )
    .await
    .unwrap()
    .token;
    let producer: FutureProducer<Recorder> = sasl(&server, "PLAIN", "alice", &token)
        .create_with_context(Recorder::default())
        .unwrap();
    create_topic(&server, "tokens").await;
    produce(&producer, "tokens", "with-token", 1).await;
    // A token that expires bounds the session: the lifetime the server gives is at most the
    // token's remaining time (here with no connections_max_reauth at all).
    let hour = within(
        "create expiring token",
        alice.create_personal_access_token(
            "hour-token",
            PersonalAccessTokenExpiry::ExpireDuration(Duration::from_secs(3600).into()),
        ),
    )
    .await
    .unwrap()
    .token;
    let mut conn = Conn::open(&server).await;
    let answer = conn.plain("alice", &hour, 1).await;
    assert_eq!(answer.error_code, 0);
    assert!(
        (3_500_000..=3_600_000).contains(&answer.session_lifetime_ms),
        "{}",
        answer.session_lifetime_ms
    );
    // The token is alice's: as root's password it fails.
    let mut conn = Conn::open(&server).await;
    let answer = conn.plain("iggy", &token, 1).await;
    assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
    // An authorization id other than the user fails too.
    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.handshake("PLAIN").await.error_code, 0);
    let answer = conn
        .authenticate(1, format!("iggy\0alice\0{token}").into_bytes())
        .await;
    assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
}

fn upsertion(
    name: &str,
    m: ScramMechanism,
    password: &str,
    iterations: i32,
) -> ScramCredentialUpsertion {
    let salt = b"a-salt-chosen-by-the-client".to_vec();
    let salted = m.salted_password(password.as_bytes(), &salt, iterations as u32);
    ScramCredentialUpsertion::default()
        .with_name(s(name))
        .with_mechanism(m.kafka_type())
        .with_iterations(iterations)
        .with_salt(Bytes::from(salt))
        .with_salted_password(Bytes::from(salted))
}

async fn alter(
    conn: &mut Conn,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Vec<(String, i16)> {
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(deletions)
        .with_upsertions(upsertions);
    let answer: AlterUserScramCredentialsResponse =
        conn.call(ApiKey::AlterUserScramCredentials, 0, &req).await;
    answer
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect()
}

async fn describe(conn: &mut Conn, names: Option<&[&str]>) -> DescribeUserScramCredentialsResponse {
    let req = DescribeUserScramCredentialsRequest::default().with_users(names.map(|n| {
        n.iter()
            .map(|n| UserName::default().with_name(s(n)))
            .collect()
    }));
    conn.call(ApiKey::DescribeUserScramCredentials, 0, &req)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_made_from_kafka_authenticates_with_scram_and_logs_in_natively() {
    let server = sasl_server(|_| {}).await;
    let mut admin = Conn::open(&server).await;
    assert_eq!(admin.plain("iggy", "iggy", 2).await.error_code, 0);
    let results = alter(
        &mut admin,
        vec![],
        vec![upsertion("bob", ScramMechanism::Sha256, "bob-pw", 8192)],
    )
    .await;
    assert_eq!(results, vec![("bob".to_string(), 0)]);

    // librdkafka authenticates as bob with SCRAM-SHA-256.
    let consumer: BaseConsumer<Recorder> = sasl(&server, "SCRAM-SHA-256", "bob", "bob-pw")
        .create_with_context(Recorder::default())
        .unwrap();
    within("metadata as bob", async {
        tokio::task::block_in_place(|| {
            consumer
                .fetch_metadata(None, Duration::from_secs(30))
                .unwrap()
        })
    })
    .await;
    // The native door knows bob, with the same password.
    let native = native_client(&server).await;
    let me = within("native login as bob", native.login_user("bob", "bob-pw"))
        .await
        .unwrap();
    assert!(me.user_id > 0);

    // DescribeUserScramCredentials: mechanism and iterations of each.
    let all = describe(&mut admin, None).await;
    assert_eq!(all.error_code, 0);
    let infos = |name: &str| {
        all.results
            .iter()
            .find(|r| r.user.as_str() == name)
            .map(|r| {
                r.credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect::<Vec<_>>()
            })
    };
    assert_eq!(infos("bob"), Some(vec![(1, 8192)]));
    assert_eq!(
        infos("iggy"),
        Some(vec![(1, 4096), (2, 4096)]),
        "root's from its password"
    );
    let some = describe(&mut admin, Some(&["bob", "nobody", "bob"])).await;
    let codes: Vec<(String, i16)> = some
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert!(codes.contains(&("bob".into(), 92)), "{codes:?}"); // DUPLICATE_RESOURCE
    assert!(codes.contains(&("nobody".into(), 91)), "{codes:?}"); // RESOURCE_NOT_FOUND

    // Refusals: iterations outside 4096..=16384 (UNACCEPTABLE_CREDENTIAL 93), an unknown
    // mechanism (UNSUPPORTED_SASL_MECHANISM 33), a credential that is not there (91).
    let results = alter(
        &mut admin,
        vec![ScramCredentialDeletion::default()
            .with_name(s("bob"))
            .with_mechanism(2)],
        vec![
            upsertion("carol", ScramMechanism::Sha256, "pw", 1000),
            upsertion("dave", ScramMechanism::Sha256, "pw", 4096).with_mechanism(9),
        ],
    )
    .await;
    assert_eq!(
        results,
        vec![
            ("bob".to_string(), 91),
            ("carol".to_string(), 93),
            ("dave".to_string(), 33)
        ]
    );
    // Deleting bob's credential: SCRAM fails for him afterwards.
    let results = alter(
        &mut admin,
        vec![ScramCredentialDeletion::default()
            .with_name(s("bob"))
            .with_mechanism(1)],
        vec![],
    )
    .await;
    assert_eq!(results, vec![("bob".to_string(), 0)]);
    let gone = describe(&mut admin, Some(&["bob"])).await;
    assert_eq!(gone.results[0].error_code, 91);

    // Both APIs need the users permissions: CLUSTER_AUTHORIZATION_FAILED (31) for others.
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;
    let mut alice = Conn::open(&server).await;
    assert_eq!(alice.plain("alice", "alice-pw", 2).await.error_code, 0);
    assert_eq!(describe(&mut alice, None).await.error_code, 31);
    let results = alter(
        &mut alice,
        vec![],
        vec![upsertion("alice", ScramMechanism::Sha512, "x-pw", 4096)],
    )
    .await;
    assert_eq!(results, vec![("alice".to_string(), 31)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sasl_logins_lock_out_like_native_logins() {
    let server = sasl_server(|_| {}).await;
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;
    // Five failures (max_failed_logins), each on its own connection (a failure closes it):
    // three PLAIN, two SCRAM proofs that do not match.
    for _ in 0..3 {
        let mut conn = Conn::open(&server).await;
        let answer = conn.plain("alice", "wrong", 1).await;
        assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
    }
    for _ in 0..2 {
        let mut conn = Conn::open(&server).await;
        assert_eq!(conn.handshake("SCRAM-SHA-256").await.error_code, 0);
        let first = conn
            .authenticate(2, b"n,,n=alice,r=client-nonce".to_vec())
            .await;
        assert_eq!(first.error_code, 0);
        let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
        let nonce = server_first
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .unwrap();
        // A proof of the right size that no password gives.
        let proof = "A".repeat(43) + "=";
        let answer = conn
            .authenticate(2, format!("c=biws,r={nonce},p={proof}").into_bytes())
            .await;
        assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
        conn.closed().await;
    }
    // The sixth attempt is refused with the right password, on either door and by SCRAM too.
    let mut conn = Conn::open(&server).await;
    let answer = conn.plain("alice", "alice-pw", 1).await;
    assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
    conn.closed().await;
    let native = native_client(&server).await;
    let err = within("native login", native.login_user("alice", "alice-pw"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, iggy::prelude::IggyError::InvalidCredentials),
        "{err:?}"
    );
    // The producer's background thread serves librdkafka's error callbacks.
    let recorder = Recorder::default();
    let producer: FutureProducer<Recorder> = sasl(&server, "SCRAM-SHA-512", "alice", "alice-pw")
        .create_with_context(recorder.clone())
        .unwrap();
    let deadline = std::time::Instant::now() + compat_tests::WAIT;
    while !recorder.authentication_failed() {
        assert!(
            std::time::Instant::now() < deadline,
            "SCRAM was not refused"
        );
        let _ = tokio::task::block_in_place(|| {
            producer
                .client()
                .fetch_metadata(None, Duration::from_millis(500))
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_password_change_ends_kafka_sessions() {
    let server = sasl_server(|_| {}).await;
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;
    let mut kafka = Conn::open(&server).await;
    assert_eq!(kafka.plain("alice", "alice-pw", 2).await.error_code, 0);
    kafka.metadata().await;
    let native = native_client(&server).await;
    let alice_id = within("login", native.login_user("alice", "alice-pw"))
        .await
        .unwrap()
        .user_id;
    // The Kafka session is one of alice's connected clients, beside the native one.
    let sessions = || async {
        within("get clients", root.get_clients())
            .await
            .unwrap()
            .iter()
            .filter(|c| c.user_id == Some(alice_id))
            .count()
    };
    assert_eq!(sessions().await, 2);
    within(
        "change password",
        native.change_password(&Identifier::named("alice").unwrap(), "alice-pw", "new-pw"),
    )
    .await
    .unwrap();
    // The Kafka session is over: its next request closes the connection.
    kafka
        .refused(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    // Closed, it left the clients (the native session that changed the password stays).
    assert_eq!(sessions().await, 1);
    assert_eq!(
        within("get clients", root.get_clients())
            .await
            .unwrap()
            .len(),
        2,
        "root's and alice's native clients only"
    );
    // The new password works over SCRAM: its credentials were derived with it.
    let consumer: BaseConsumer<Recorder> = sasl(&server, "SCRAM-SHA-256", "alice", "new-pw")
        .create_with_context(Recorder::default())
        .unwrap();
    tokio::task::block_in_place(|| {
        consumer
            .fetch_metadata(None, Duration::from_secs(30))
            .unwrap()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_closes_unless_reauthenticated_as_the_same_user() {
    let server = sasl_server(|c| {
        c.kafka.connections_max_reauth = Some(Duration::from_millis(1500));
    })
    .await;
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;

    // SaslAuthenticate v1+ answers carry the session lifetime, connections_max_reauth.
    let mut conn = Conn::open(&server).await;
    let answer = conn.plain("alice", "alice-pw", 1).await;
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.session_lifetime_ms, 1500);
    conn.metadata().await;
    // Re-authentication (KIP-368) as the same user renews the session.
    let again = conn.plain("alice", "alice-pw", 1).await;
    assert_eq!(again.error_code, 0);
    conn.metadata().await;
    // Waiting for the server-given deadline (from the renewal) is the point of this test.
    let lifetime = Duration::from_millis(again.session_lifetime_ms as u64);
    tokio::time::sleep(lifetime).await;
    conn.refused(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;

    // Re-authenticating as another user fails and closes the connection.
    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.plain("alice", "alice-pw", 2).await.error_code, 0);
    let other = conn.plain("iggy", "iggy", 2).await;
    assert_eq!(other.error_code, SASL_AUTHENTICATION_FAILED);
    conn.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_keeps_its_connection_across_reauthentications() {
    let server = sasl_server(|c| {
        c.kafka.connections_max_reauth = Some(Duration::from_millis(1500));
    })
    .await;
    let root = iggy_root_client(&server).await;
    create_user(&root, "alice", "alice-pw").await;
    create_topic(&server, "reauth").await;
    let recorder = Recorder::default();
    let producer: FutureProducer<Recorder> = sasl(&server, "SCRAM-SHA-512", "alice", "alice-pw")
        .set("statistics.interval.ms", "100")
        .create_with_context(recorder.clone())
        .unwrap();
    produce(&producer, "reauth", "before", 1).await;
    // Past two session lifetimes (the server-given deadline): librdkafka re-authenticates
    // before each expiry, so its connection is never closed by the server.
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        produce(&producer, "reauth", &format!("round-{round}"), 1).await;
    }
    // Statistics emitted after the last delivery.
    *recorder.stats.lock().unwrap() = None;
    let deadline = std::time::Instant::now() + compat_tests::WAIT;
    let disconnects = loop {
        let stats = recorder.stats.lock().unwrap().clone();
        let broker = stats.and_then(|s| s.brokers.into_values().find(|b| b.nodeid >= 0));
        if let Some(b) = broker {
            break b.disconnects.unwrap_or(0);
        }
        assert!(std::time::Instant::now() < deadline, "no statistics");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(disconnects, 0, "the server closed librdkafka's connection");
    let got = consume(
        &sasl(&server, "SCRAM-SHA-512", "alice", "alice-pw"),
        "reauth",
        3,
    );
    assert_eq!(got, ["before-0", "round-0-0", "round-1-0"]);
}

/// A users manager (manage_users, not root) cannot change root's credentials (CLUSTER_
/// AUTHORIZATION_FAILED, 31); a Kafka password rotation leaves nothing of the old password
/// (native login, PLAIN) and ends the user's Kafka sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_alterations_guard_root_and_rotate_the_whole_password() {
    let server = sasl_server(|_| {}).await;
    let root = iggy_root_client(&server).await;
    let global = GlobalPermissions {
        manage_users: true,
        read_users: true,
        ..Default::default()
    };
    let permissions = iggy::prelude::Permissions {
        global,
        streams: None,
    };
    within(
        "create admin",
        root.create_user("admin", "admin-pw", UserStatus::Active, Some(permissions)),
    )
    .await
    .unwrap();
    create_user(&root, "alice", "alice-pw").await;
    let mut admin = Conn::open(&server).await;
    assert_eq!(admin.plain("admin", "admin-pw", 2).await.error_code, 0);
    let take_over = alter(
        &mut admin,
        vec![],
        vec![upsertion("iggy", ScramMechanism::Sha512, "mine", 4096)],
    )
    .await;
    assert_eq!(take_over, vec![("iggy".to_string(), 31)]);
    let deletion = ScramCredentialDeletion::default()
        .with_name(s("iggy"))
        .with_mechanism(1);
    assert_eq!(
        alter(&mut admin, vec![deletion], vec![]).await,
        vec![("iggy".to_string(), 31)]
    );
    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.plain("iggy", "iggy", 2).await.error_code, 0);

    let mut alice = Conn::open(&server).await;
    assert_eq!(alice.plain("alice", "alice-pw", 2).await.error_code, 0);
    let rotated = alter(
        &mut admin,
        vec![],
        vec![upsertion("alice", ScramMechanism::Sha256, "new-pw", 4096)],
    )
    .await;
    assert_eq!(rotated, vec![("alice".to_string(), 0)]);
    alice
        .refused(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    let mut conn = Conn::open(&server).await;
    let old = conn.plain("alice", "alice-pw", 2).await;
    assert_eq!(old.error_code, SASL_AUTHENTICATION_FAILED, "old password");
    let native = native_client(&server).await;
    assert!(within("old login", native.login_user("alice", "alice-pw"))
        .await
        .is_err());
    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.plain("alice", "new-pw", 2).await.error_code, 0);
}

/// Bound: before SASL authentication a frame above 512 KiB (Kafka's
/// `sasl.server.max.receive.size`) closes the connection before its body is read; a
/// re-authentication must use the first authentication's mechanism (KIP-368).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_frames_are_capped_and_reauthentication_keeps_its_mechanism() {
    // A body that never comes is not what closes the connection: only the cap can, in time.
    let server =
        sasl_server(|c| c.kafka.limits.request_read_timeout = Duration::from_secs(3600)).await;
    let mut conn = Conn::open(&server).await;
    conn.stream
        .write_all(&(512 * 1024 + 1_i32).to_be_bytes())
        .await
        .unwrap();
    conn.closed().await;

    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.plain("iggy", "iggy", 2).await.error_code, 0);
    let hs = conn.handshake("SCRAM-SHA-256").await;
    assert_eq!(hs.error_code, SASL_AUTHENTICATION_FAILED);
    conn.closed().await;
}
