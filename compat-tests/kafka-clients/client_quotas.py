#!/usr/bin/env python3
"""Client quotas with the Python clients against a running wharf-server.

Usage: client_quotas.py HOST:PORT   (the server's Kafka listener; quotas measured over 2 windows
of 1 s, as the Rust test starts it)

kafka-python's admin client has no quota methods (nor has confluent-kafka's), so kafka-python's
own DescribeClientQuotas/AlterClientQuotas classes (its encoders and decoders, at each version)
are sent through its admin client's connection. confluent-kafka (librdkafka) producers and
consumers over their byte rates must see the throttling through their `throttle_cb` and still
deliver and read every record exactly once.
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka.protocol.admin.client_quotas import (
    AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
)

from scenarios import WAIT_S, check, run_scenarios, run_timeout

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: client_quotas.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]
INVALID_REQUEST = 42

_ADMIN = []


def admin():
    if not _ADMIN:
        _ADMIN.append(KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30_000))
    return _ADMIN[0]


def send(request):
    """Sends a kafka-python request through the admin client's connection; its answer."""
    a = admin()

    async def call():
        return await a._manager.send(request)

    return a._manager.run(call)


def alter(version, entries, validate_only=False):
    """entries: [([(type, name)], [(key, value or None)])]; the answer's (code, message) list."""
    E = AlterClientQuotasRequest.EntryData
    req = AlterClientQuotasRequest(
        version=version,
        entries=[
            E(
                version=version,
                entity=[E.EntityData(version=version, entity_type=t, entity_name=n) for t, n in entity],
                ops=[E.OpData(version=version, key=k, value=0.0 if v is None else float(v), remove=v is None)
                     for k, v in ops],
            )
            for entity, ops in entries
        ],
        validate_only=validate_only,
    )
    resp = send(req)
    return [(e.error_code, e.error_message) for e in resp.entries]


def describe(version, components, strict=False):
    """components: [(match_type, type, name)]; (error code, {entity: {key: value}})."""
    C = DescribeClientQuotasRequest.ComponentData
    req = DescribeClientQuotasRequest(
        version=version,
        components=[C(version=version, entity_type=t, match_type=m, match=n) for m, t, n in components],
        strict=strict,
    )
    resp = send(req)
    found = {}
    for e in resp.entries or []:
        entity = tuple(sorted((d.entity_type, d.entity_name) for d in e.entity))
        found[entity] = {v.key: v.value for v in e.values}
    return resp.error_code, found


def set_client_quota(client_id, key, value):
    check(alter(1, [([("client-id", client_id)], [(key, value)])]) == [(0, None)],
          f"set {key} for {client_id}")


def quota_apis_at_each_version():
    for v in (0, 1):
        user = f"py-{RUN}-{v}"
        got = alter(v, [
            ([("user", user)], [("producer_byte_rate", 4096)]),
            ([("user", user), ("client-id", None)], [("consumer_byte_rate", 8192)]),
        ])
        check(got == [(0, None), (0, None)], f"v{v} alter: {got}")
        code, found = describe(v, [(0, "user", user)])
        check(code == 0, f"v{v} describe error {code}")
        check(found == {
            (("user", user),): {"producer_byte_rate": 4096.0},
            (("client-id", None), ("user", user)): {"consumer_byte_rate": 8192.0},
        }, f"v{v} described {found}")
        code, found = describe(v, [(0, "user", user), (1, "client-id", None)], strict=True)
        check(list(found) == [(("client-id", None), ("user", user))], f"v{v} strict {found}")
        got = alter(v, [([("user", user)], [("producer_byte_rate", None)])], validate_only=True)
        check(got == [(0, None)], f"v{v} validate_only: {got}")
        got = alter(v, [([("user", user)], [("not_a_quota", 1)])])
        check(got[0][0] == INVALID_REQUEST and got[0][1], f"v{v} unknown key: {got}")
        got = alter(v, [
            ([("user", user)], [("producer_byte_rate", None)]),
            ([("user", user), ("client-id", None)], [("consumer_byte_rate", None)]),
        ])
        check(got == [(0, None), (0, None)], f"v{v} remove: {got}")
        code, found = describe(v, [(2, "user", None)])
        check(not any(dict(k).get("user") == user for k in found), f"v{v} left {found}")


def create_topic(name):
    # The client must outlive its futures.
    client = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = client.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    futures[name].result(timeout=WAIT_S)


def confluent_producer_is_throttled():
    topic = f"py-quota-produce-{RUN}"
    client_id = f"py-throttled-producer-{RUN}"
    create_topic(topic)
    set_client_quota(client_id, "producer_byte_rate", 20_000)
    throttles = []
    delivered = []
    p = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "client.id": client_id,
        "linger.ms": 5,
        "batch.size": 8192,
        "throttle_cb": lambda event: throttles.append(event.throttle_time),
    })
    n = 150
    for i in range(n):
        p.produce(topic, value=(f"{i:06d}" + "x" * 1000).encode(),
                  on_delivery=lambda err, msg: delivered.append(err is None))
        p.poll(0)
    deadline = time.monotonic() + WAIT_S
    while len(delivered) < n and time.monotonic() < deadline:
        p.poll(0.1)
    p.flush(WAIT_S)
    check(len(delivered) == n and all(delivered), f"{sum(delivered)} of {n} delivered")
    check(throttles and max(throttles) > 0, f"the producer saw no throttle ({throttles})")


def confluent_consumer_is_throttled():
    topic = f"py-quota-fetch-{RUN}"
    client_id = f"py-throttled-consumer-{RUN}"
    create_topic(topic)
    n = 150
    # Batches well below the quota's window (20 000 B): as in Kafka, a batch above
    # quota x (samples - 1) windows could never be fetched by that client.
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5, "batch.size": 4096})
    for i in range(n):
        p.produce(topic, value=(f"{i:06d}" + "y" * 1000).encode())
    check(p.flush(WAIT_S) == 0, "produced")
    set_client_quota(client_id, "consumer_byte_rate", 20_000)
    throttles = []
    c = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "client.id": client_id,
        "group.id": f"py-quota-{RUN}",
        "enable.auto.commit": False,
        "throttle_cb": lambda event: throttles.append(event.throttle_time),
    })
    c.assign([TopicPartition(topic, 0, 0)])
    seen = []
    deadline = time.monotonic() + 2 * WAIT_S
    while len(seen) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        seen.append(int(m.value()[:6]))
    c.close()
    check(seen == list(range(n)), f"read {len(seen)} of {n} records in order, each once")
    check(throttles and max(throttles) > 0, f"the consumer saw no throttle ({throttles})")


if __name__ == "__main__":
    run_scenarios("client-quotas", f"client quotas against {BOOTSTRAP}", [
        ("kafka-python AlterClientQuotas/DescribeClientQuotas v0 and v1", quota_apis_at_each_version),
        ("confluent-kafka producer over producer_byte_rate is throttled", confluent_producer_is_throttled),
        ("confluent-kafka consumer over consumer_byte_rate is throttled", confluent_consumer_is_throttled),
    ], run_timeout(220))
