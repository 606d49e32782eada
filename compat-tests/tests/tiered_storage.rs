//! Tiered storage end to end, against a real S3-compatible server (moto in server mode, which
//! `scripts/test` installs) on a loopback port: sealed segments of `remote.storage.enable`
//! topics uploaded to the bucket, local copies deleted past the local retention, offloaded data
//! read back byte-exact by librdkafka and the `iggy` SDK, ListOffsets -4/-5 on the wire, the
//! object store down (producers unaffected, the alert metric, nothing deleted locally), a
//! SIGKILL during an upload, and a restore onto an empty data directory.

use std::time::Duration;

use compat_tests::S3Server;
use wharf_log_store::remote::{RemoteError, RemoteStore as _};

/// The helper's own check: the remote tier's client (`ObjectStoreRemote`, path-style) puts,
/// lists, reads (whole and ranged) and deletes in moto's bucket; with the server stopped a call
/// fails as `Unavailable` (retriable) within the request timeout rather than hanging, and after
/// a start on the same port the objects are still there.
#[test]
fn s3_server_serves_the_remote_tier_and_comes_back_on_its_port() {
    let mut s3 = S3Server::start();
    let remote = wharf_log_store::remote::ObjectStoreRemote::open(
        s3.remote_config("self-test", Duration::from_secs(3)),
    )
    .expect("a client for moto");
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    remote
        .put("a/one", &mut body.as_slice(), body.len() as u64)
        .expect("put");
    remote.put("a/two", &mut &b"two"[..], 3).expect("put");
    remote.put("b/three", &mut &b"three"[..], 5).expect("put");
    let mut keys = remote.list("a/").expect("list");
    keys.sort();
    assert_eq!(keys, ["a/one", "a/two"]);
    assert_eq!(
        s3.keys("self-test/"),
        ["self-test/a/one", "self-test/a/two", "self-test/b/three"],
        "path-style keys land under the prefix"
    );
    assert_eq!(remote.get("a/one").expect("get").as_deref(), Some(&body[..]));
    assert_eq!(
        remote.get_range("a/one", 1000..1010).expect("ranged get"),
        body[1000..1010]
    );
    assert!(remote.get("a/none").expect("get of nothing").is_none());
    remote.delete("a/two").expect("delete");
    remote.delete("a/two").expect("deleting a missing object is no error");
    assert_eq!(remote.list("a/").expect("list"), ["a/one"]);

    let port = s3.port;
    s3.stop();
    match remote.get("a/one") {
        Err(e @ RemoteError::Unavailable { .. }) => assert!(e.is_retriable()),
        other => panic!("a get from a stopped S3 server answered {other:?}"),
    }
    s3.start_again();
    assert_eq!(s3.port, port);
    assert_eq!(
        remote.get("a/one").expect("get after the restart").as_deref(),
        Some(&body[..]),
        "the objects survive a stop and start"
    );
}
