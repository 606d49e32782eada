#!/usr/bin/env python3
"""kafka-python (pure Python) against a wharf-server Kafka listener with SASL over TLS.

Usage: secure_kafka_python.py HOST:PORT   (a SASL_SSL Kafka listener)
Environment (the Rust harness compat-tests/tests/kafka_clients_secure.rs sets it up):
  WHARF_CA_FILE                 PEM CA certificate that signed the server's certificate
  WHARF_USER, WHARF_PASSWORD    a user who may send to and poll both topics
  WHARF_READER, WHARF_READER_PASSWORD   a user who may read WHARF_TOPIC_A only
  WHARF_TOPIC_A, WHARF_TOPIC_B  two existing one-partition topics, empty at start

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for kafka-python's DEBUG log on stderr.
WHARF_TEST_TIMEOUT (seconds, default 300) bounds the whole run.
"""
import logging
import os
import sys
import time

import kafka
import kafka.errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from scenarios import Failed, WAIT_S, check, run_scenarios, run_timeout

N_RECORDS = 200
NAME = "secure kafka-python"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: secure_kafka_python.py HOST:PORT")
ENV = {k: os.environ.get(k) or sys.exit(f"{k} is not set") for k in (
    "WHARF_CA_FILE", "WHARF_USER", "WHARF_PASSWORD", "WHARF_READER", "WHARF_READER_PASSWORD",
    "WHARF_TOPIC_A", "WHARF_TOPIC_B")}
TOPIC_A, TOPIC_B = ENV["WHARF_TOPIC_A"], ENV["WHARF_TOPIC_B"]
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SENT = {TOPIC_A: [], TOPIC_B: []}  # values sent so far, in order, per topic


def conf(mechanism, user, password):
    return dict(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30_000,
                security_protocol="SASL_SSL", sasl_mechanism=mechanism,
                sasl_plain_username=user, sasl_plain_password=password,
                ssl_cafile=ENV["WHARF_CA_FILE"])


def produce(c, topic, values):
    """Sends values to partition 0 of topic; checks each record's metadata."""
    p = KafkaProducer(**c)
    try:
        futures = [p.send(topic, value=v, partition=0) for v in values]
        p.flush(timeout=WAIT_S)
        offsets = []
        for i, f in enumerate(futures):
            check(f.is_done, f"record {i} undelivered after flush({WAIT_S})")
            check(f.succeeded(), f"record {i}: {f.exception!r}")
            offsets.append(f.get(timeout=0).offset)
    finally:
        p.close(timeout=WAIT_S)
    first = len(SENT[topic])
    check(offsets == list(range(first, first + len(values))), f"record offsets {offsets[:3]}..., want {first}..")
    SENT[topic].extend(values)


def consume(c, topic):
    """Reads partition 0 of topic from the beginning to its end offset; returns the values.
    Errors the client raises (an authorization failure among them) propagate."""
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **c)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning()
        end = consumer.end_offsets([tp], timeout_ms=30_000)[tp]
        out, deadline = [], time.monotonic() + WAIT_S
        while consumer.position(tp, timeout_ms=30_000) < end:
            check(time.monotonic() < deadline, f"{topic}: read {len(out)} of {end} records within {WAIT_S}s")
            for batch in consumer.poll(timeout_ms=200).values():
                out.extend(r.value for r in batch)
        return out
    finally:
        consumer.close()


def scenario_mechanism(mechanism):
    def run():
        c = conf(mechanism, ENV["WHARF_USER"], ENV["WHARF_PASSWORD"])
        values = [f"{mechanism} record {i}".encode() for i in range(N_RECORDS)]
        produce(c, TOPIC_A, values)
        got = consume(c, TOPIC_A)
        check(got == SENT[TOPIC_A], f"read {len(got)} records from {TOPIC_A}, sent {len(SENT[TOPIC_A])} (or in another order)")
    return run


def scenario_reader():
    writer = conf("SCRAM-SHA-512", ENV["WHARF_USER"], ENV["WHARF_PASSWORD"])
    produce(writer, TOPIC_B, [b"for the writer's eyes"])
    got = consume(writer, TOPIC_B)
    check(got == SENT[TOPIC_B], f"the writer read {got!r} from {TOPIC_B}, sent {SENT[TOPIC_B]!r}")
    reader = conf("SCRAM-SHA-512", ENV["WHARF_READER"], ENV["WHARF_READER_PASSWORD"])
    got = consume(reader, TOPIC_A)
    check(got == SENT[TOPIC_A] and got, f"the reader read {len(got)} records from {TOPIC_A}, want the {len(SENT[TOPIC_A])} sent")
    try:
        got = consume(reader, TOPIC_B)
        raise Failed(f"the reader read {got!r} from {TOPIC_B}, want TopicAuthorizationFailedError")
    except kafka.errors.TopicAuthorizationFailedError as e:
        print(f"    {TOPIC_B}: {e!r}", flush=True)


class Seen(logging.Handler):
    """Keeps the exceptions kafka-python logs as the reason a bootstrap connection failed."""
    def __init__(self):
        super().__init__(logging.WARNING)
        self.errors = []

    def emit(self, record):
        self.errors.extend(a for a in (record.args or ()) if isinstance(a, Exception))


def scenario_wrong_password():
    # kafka-python 3 retries a failed bootstrap connection until bootstrap_timeout_ms and then
    # raises KafkaTimeoutError ("Unable to bootstrap"); the reason, SaslAuthenticationFailedError,
    # is in its log. Both are checked.
    for mechanism in ["PLAIN", "SCRAM-SHA-512"]:
        c = dict(conf(mechanism, ENV["WHARF_USER"], "not the password"), bootstrap_timeout_ms=8_000,
                 # one failed attempt is enough to see; do not hammer the server
                 reconnect_backoff_ms=10_000, reconnect_backoff_max_ms=10_000)
        seen = Seen()
        logger = logging.getLogger("kafka.net.manager")
        level = logger.level
        logger.setLevel(min(logger.getEffectiveLevel(), logging.WARNING))
        logger.addHandler(seen)
        try:
            consumer = KafkaConsumer(group_id=None, **c)
            consumer.close()
            raise Failed(f"{mechanism}: a wrong password bootstrapped")
        except kafka.errors.KafkaTimeoutError as e:
            auth = [x for x in seen.errors if isinstance(x, kafka.errors.SaslAuthenticationFailedError)]
            others = [x for x in seen.errors if not isinstance(x, (kafka.errors.SaslAuthenticationFailedError,
                                                                   kafka.errors.KafkaTimeoutError))]
            check(auth and not others, f"{mechanism}: {e!r}; the logged reasons {seen.errors!r}, want SaslAuthenticationFailedError")
            print(f"    {mechanism}: {e!r}, because {auth[0]!r}", flush=True)
        finally:
            logger.removeHandler(seen)
            logger.setLevel(level)


SCENARIOS = [(f"SASL_SSL {m}: produce {N_RECORDS} records and read them back", scenario_mechanism(m)) for m in MECHANISMS] + [
    ("a user who may read topic A only reads A and gets TopicAuthorizationFailedError on B", scenario_reader),
    # Last: failed logins count against the user and address (the server's login limiter).
    ("a wrong password (PLAIN, SCRAM-SHA-512) fails to bootstrap, with SaslAuthenticationFailedError", scenario_wrong_password),
]


def main():
    logging.basicConfig(level=logging.DEBUG if os.environ.get("WHARF_CLIENT_DEBUG") else logging.CRITICAL,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_scenarios(NAME, f"kafka-python {kafka.__version__} against {BOOTSTRAP} (SASL_SSL)",
        SCENARIOS, run_timeout(300))


if __name__ == "__main__":
    main()
