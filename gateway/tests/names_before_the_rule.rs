//! Names made before the naming rule (issue 14, item 9): a data directory holding them opens,
//! the broker reports them in one warning line at start, keeps them from Kafka clients, and
//! still refuses such names when they are new.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use wharf_gateway::broker::{Broker, BrokerError, BrokerSettings, Ident, NameKind, StoreConfig};
use wharf_log_store::LogStore;

/// Collects what the broker logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn settings() -> BrokerSettings {
    BrokerSettings {
        root_username: "iggy".into(),
        root_password: "iggy".into(),
        kafka_default_stream: "default".into(),
        groups: Default::default(),
        transactions: Default::default(),
        logins: Default::default(),
        max_partitions_per_topic: 1000,
        max_partitions: 100_000,
    }
}

#[tokio::test]
async fn names_made_before_the_rule_open_are_reported_once_and_are_not_shown_to_kafka() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Straight through the store: its own check (1..=255 bytes, no control characters)
        // is all these names ever met.
        let (store, _) = LogStore::open(dir.path(), StoreConfig::default()).unwrap();
        store.create_stream("p.q").unwrap();
        store
            .create_topic(Ident::Name("p.q"), "t", 1, Default::default())
            .unwrap();
        store.create_stream("default").unwrap();
        store
            .create_topic(Ident::Name("default"), "../../x", 1, Default::default())
            .unwrap();
        store
            .create_topic(Ident::Name("default"), "ok", 1, Default::default())
            .unwrap();
        store.close().unwrap();
    }

    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let broker = tracing::subscriber::with_default(subscriber, || {
        Broker::open(dir.path(), StoreConfig::default(), settings())
    })
    .expect("a data directory with names from before the rule opens");
    let text = String::from_utf8(log.0.lock().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("naming rule")).collect();
    assert_eq!(lines.len(), 1, "one warning line: {text}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(lines[0].contains(r#"stream "p.q""#), "{}", lines[0]);
    assert!(
        lines[0].contains(r#"topic "../../x" of stream "default""#),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains(r#""ok""#), "{}", lines[0]);

    // They still resolve natively; Kafka clients see only the legal name.
    let s = broker.stream(Ident::Name("p.q")).unwrap();
    assert_eq!(broker.topics(s.id).unwrap().len(), 1);
    let kafka: Vec<String> = broker.kafka_topics().into_iter().map(|(n, _)| n).collect();
    assert_eq!(kafka, ["ok"]);
    assert!(matches!(
        broker.kafka_topic("../../x"),
        Err(BrokerError::InvalidName { .. })
    ));

    // As new names they are refused.
    assert!(matches!(
        broker.create_stream("p.q2").await,
        Err(BrokerError::InvalidName {
            kind: NameKind::Stream,
            ..
        })
    ));
    let default = broker.stream(Ident::Name("default")).unwrap();
    assert!(matches!(
        broker
            .create_topic(default.id, "../../y", 1, Default::default())
            .await,
        Err(BrokerError::InvalidName {
            kind: NameKind::Topic,
            ..
        })
    ));
    // Keeping a topic's old name in an update is not a new name.
    let old = broker
        .topic(Ident::Id(default.id), Ident::Name("../../x"))
        .unwrap();
    broker
        .update_topic(default.id, old.id, Some("../../x"), old.settings.clone())
        .await
        .unwrap();
    broker.close().await.unwrap();
}
