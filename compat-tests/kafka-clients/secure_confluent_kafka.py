#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a wharf-server Kafka listener with SASL over TLS.

Usage: secure_confluent_kafka.py HOST:PORT   (a SASL_SSL Kafka listener)
Environment (the Rust harness compat-tests/tests/kafka_clients_secure.rs sets it up):
  WHARF_CA_FILE                 PEM CA certificate that signed the server's certificate
  WHARF_USER, WHARF_PASSWORD    a user who may send to and poll both topics
  WHARF_READER, WHARF_READER_PASSWORD   a user who may read WHARF_TOPIC_A only
  WHARF_TOPIC_A, WHARF_TOPIC_B  two existing one-partition topics, empty at start
  WHARF_ADMIN, WHARF_ADMIN_PASSWORD   a user who may manage users (grants the two users their
                                consumer groups with CreateAcls: a confluent-kafka consumer
                                always has a group.id, and librdkafka looks its coordinator up)

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for librdkafka's security/protocol debug log on stderr.
WHARF_TEST_TIMEOUT (seconds, default 300) bounds the whole run.
"""
import os
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)

from scenarios import Failed, WAIT_S, check, run_scenarios, run_timeout

N_RECORDS = 200
NAME = "secure confluent-kafka"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: secure_confluent_kafka.py HOST:PORT")
ENV = {k: os.environ.get(k) or sys.exit(f"{k} is not set") for k in (
    "WHARF_CA_FILE", "WHARF_USER", "WHARF_PASSWORD", "WHARF_READER", "WHARF_READER_PASSWORD",
    "WHARF_TOPIC_A", "WHARF_TOPIC_B", "WHARF_ADMIN", "WHARF_ADMIN_PASSWORD")}
TOPIC_A, TOPIC_B = ENV["WHARF_TOPIC_A"], ENV["WHARF_TOPIC_B"]
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SENT = {TOPIC_A: [], TOPIC_B: []}  # values sent so far, in order, per topic
GROUPS = "secure-"  # the prefix of every consumer group name here


def conf(mechanism, user, password, **extra):
    c = {"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4",
         "security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
         "sasl.username": user, "sasl.password": password,
         "ssl.ca.location": ENV["WHARF_CA_FILE"]}
    if os.environ.get("WHARF_CLIENT_DEBUG"):
        c["debug"] = "security,protocol,broker,topic"
    c.update({k.replace("_", "."): v for k, v in extra.items()})
    return c


def produce(c, topic, values):
    """Sends values to partition 0 of topic; checks each delivery report."""
    errors, offsets = [], []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            offsets.append(msg.offset())

    p = Producer(c)
    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=report)
    left = p.flush(WAIT_S)
    check(left == 0, f"{left} records still undelivered after {WAIT_S}s")
    check(not errors, f"delivery errors: {errors[:5]} ({len(errors)} in all)")
    first = len(SENT[topic])
    check(offsets == list(range(first, first + len(values))), f"delivery offsets {offsets[:3]}..., want {first}..")
    SENT[topic].extend(values)


def consume(c, topic):
    """Reads partition 0 of topic from the beginning to its end; returns the values (a consumer
    error fails)."""
    consumer = Consumer(dict(c, **{"enable.partition.eof": True, "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out, deadline = [], time.monotonic() + WAIT_S
        while True:
            check(time.monotonic() < deadline, f"{topic}: read {len(out)} records, no end within {WAIT_S}s")
            m = consumer.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise Failed(f"{topic}: consumer error: {m.error()}")
            out.append(m.value())
    finally:
        consumer.close()


def scenario_group_acls():
    admin = AdminClient(conf("SCRAM-SHA-512", ENV["WHARF_ADMIN"], ENV["WHARF_ADMIN_PASSWORD"]))
    users = [f"User:{ENV['WHARF_USER']}", f"User:{ENV['WHARF_READER']}"]
    bindings = [AclBinding(ResourceType.GROUP, GROUPS, ResourcePatternType.PREFIXED, u, "*",
                           AclOperation.READ, AclPermissionType.ALLOW) for u in users]
    for b, fut in admin.create_acls(bindings, request_timeout=WAIT_S).items():
        fut.result(timeout=WAIT_S)  # raises KafkaException on a refusal
    for u in users:
        listed = admin.describe_acls(AclBindingFilter(ResourceType.GROUP, None, ResourcePatternType.ANY, u, None,
                                                      AclOperation.ANY, AclPermissionType.ANY),
                                     request_timeout=WAIT_S).result(timeout=WAIT_S)
        want = [(ResourceType.GROUP, GROUPS, ResourcePatternType.PREFIXED, AclOperation.READ, AclPermissionType.ALLOW)]
        got = [(b.restype, b.name, b.resource_pattern_type, b.operation, b.permission_type) for b in listed]
        check(got == want, f"describe_acls for {u}: {listed}, want Group {GROUPS}* Read Allow")


def scenario_mechanism(mechanism):
    def run():
        c = conf(mechanism, ENV["WHARF_USER"], ENV["WHARF_PASSWORD"])
        values = [f"{mechanism} record {i}".encode() for i in range(N_RECORDS)]
        produce(c, TOPIC_A, values)
        got = consume(dict(c, **{"group.id": f"{GROUPS}{mechanism}"}), TOPIC_A)
        check(got == SENT[TOPIC_A], f"read {len(got)} records from {TOPIC_A}, sent {len(SENT[TOPIC_A])} (or in another order)")
    return run


def scenario_reader():
    writer = conf("SCRAM-SHA-512", ENV["WHARF_USER"], ENV["WHARF_PASSWORD"])
    produce(writer, TOPIC_B, [b"for the writer's eyes"])
    got = consume(dict(writer, **{"group.id": f"{GROUPS}writer"}), TOPIC_B)
    check(got == SENT[TOPIC_B], f"the writer read {got!r} from {TOPIC_B}, sent {SENT[TOPIC_B]!r}")
    reader = dict(conf("SCRAM-SHA-512", ENV["WHARF_READER"], ENV["WHARF_READER_PASSWORD"]), **{"group.id": f"{GROUPS}reader"})
    got = consume(reader, TOPIC_A)
    check(got == SENT[TOPIC_A] and got, f"the reader read {len(got)} records from {TOPIC_A}, want the {len(SENT[TOPIC_A])} sent")
    # librdkafka reports a topic's metadata error to the application for subscribed topics (an
    # assign()ed partition of such a topic just waits for a leader), so subscribe here.
    c = Consumer(dict(reader, **{"group.id": f"{GROUPS}reader-b", "enable.auto.commit": False}))
    try:
        c.subscribe([TOPIC_B])
        deadline = time.monotonic() + WAIT_S
        while True:
            check(time.monotonic() < deadline, f"the reader subscribed to {TOPIC_B}: no error within {WAIT_S}s")
            m = c.poll(0.2)
            if m is None:
                continue
            check(m.error() is not None, f"the reader read {m.value()!r} from {TOPIC_B}, want TOPIC_AUTHORIZATION_FAILED")
            check(m.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
                  f"the reader subscribed to {TOPIC_B}: {m.error()}, want TOPIC_AUTHORIZATION_FAILED")
            print(f"    {TOPIC_B}: {m.error()}", flush=True)
            break
    finally:
        c.close()


def scenario_wrong_password():
    for mechanism in ["PLAIN", "SCRAM-SHA-512"]:
        errors, seen = [], threading.Event()

        def on_error(err):
            errors.append(err)
            if err.code() == KafkaError._AUTHENTICATION:
                seen.set()

        p = Producer(dict(conf(mechanism, ENV["WHARF_USER"], "not the password",
                               # one failed attempt is enough to see; do not hammer the server
                               reconnect_backoff_ms=10_000, reconnect_backoff_max_ms=10_000),
                          error_cb=on_error))
        p.produce(TOPIC_A, value=b"never stored")
        deadline = time.monotonic() + WAIT_S
        while not seen.is_set():
            check(time.monotonic() < deadline, f"{mechanism}: no authentication error within {WAIT_S}s; errors: {errors}")
            p.poll(0.2)
        err = next(e for e in errors if e.code() == KafkaError._AUTHENTICATION)
        check("SASL authentication error" in err.str(), f"{mechanism}: {err.str()!r}, want a SASL authentication error")
        p.purge()
        left = p.flush(0)
        check(left == 0, f"{mechanism}: {left} records left after purge")
        print(f"    {mechanism}: {err.str()}", flush=True)


SCENARIOS = [("an admin grants the users their consumer groups (CreateAcls, DescribeAcls)", scenario_group_acls)] + [
    (f"SASL_SSL {m}: produce {N_RECORDS} records and read them back", scenario_mechanism(m)) for m in MECHANISMS] + [
    ("a user who may read topic A only reads A and gets TOPIC_AUTHORIZATION_FAILED on B", scenario_reader),
    # Last: failed logins count against the user and address (the server's login limiter).
    ("a wrong password (PLAIN, SCRAM-SHA-512) fails with _AUTHENTICATION", scenario_wrong_password),
]


def main():
    run_scenarios(NAME, f"confluent-kafka {__import__('confluent_kafka').__version__} "
        f"(librdkafka {__import__('confluent_kafka').libversion()[0]}) against {BOOTSTRAP} (SASL_SSL)",
        SCENARIOS, run_timeout(300))


if __name__ == "__main__":
    main()
