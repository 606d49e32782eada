#!/usr/bin/env python3
"""Kafka 4's config details through kafka-python's and confluent-kafka's admin clients against a
running wharf-server: topics created with compression.type, a gzip producer into a zstd (and an
lz4) topic and consumers of both libraries reading every record back; group configs (KIP-848's
GROUP resource) altered and described; the broker resource described with the keys clients read
and its dynamic compression.type altered and reset.

Usage: configs_v4.py HOST:PORT   (the server's Kafka listener)

Prints one line per scenario, exits 0 only if all pass. WHARF_TEST_TIMEOUT (seconds, default
200) bounds the whole run.
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource as KpResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic
from kafka.errors import InvalidConfigurationError

from scenarios import WAIT_S, check, run_scenarios, run_timeout

NAME = "configs-v4"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: configs_v4.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]
CK_ADMIN = AdminClient({"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4"})


def kp_admin():
    return KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=int(WAIT_S * 1000))


def kp_configs(admin, kind, name):
    """kafka-python's describe_configs of one resource, every key: {name: value}."""
    got = admin.describe_configs([KpResource(kind, name)], config_filter="all")
    by_name = list(got.values())[0][name]
    return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in by_name.items()}


def ck_describe(kind, name):
    """confluent-kafka's describe_configs of one resource: {name: ConfigEntry}."""
    fut = CK_ADMIN.describe_configs([ConfigResource(kind, name)])
    return list(fut.values())[0].result(timeout=WAIT_S)


def consume_kp(topic, n):
    c = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                      group_id=f"kp-{topic}", consumer_timeout_ms=int(WAIT_S * 1000))
    got = []
    for m in c:
        got.append(m.value)
        if len(got) == n:
            break
    c.close()
    return got


def consume_ck(topic, n):
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"ck-{topic}",
                  "auto.offset.reset": "earliest", "broker.address.family": "v4"})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        check(m.error() is None, f"consume error {m.error()}")
        got.append(m.value())
    c.close()
    return got


def kafka_python_zstd_topic():
    topic = f"kp-zstd-{RUN}"
    admin = kp_admin()
    admin.create_topics([KpNewTopic(topic, 1, 1, topic_configs={"compression.type": "zstd"})])
    configs = kp_configs(admin, ConfigResourceType.TOPIC, topic)
    check(configs.get("compression.type") == "zstd", f"compression.type {configs.get('compression.type')}")
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type="gzip", linger_ms=5)
    want = [f"kp-{i}".encode() for i in range(20)]
    for v in want:
        p.send(topic, v)
    p.flush(timeout=WAIT_S)
    p.close()
    check(consume_kp(topic, 20) == want, "kafka-python read back other records")
    check(consume_ck(topic, 20) == want, "confluent-kafka read back other records")
    admin.close()


def confluent_lz4_topic():
    topic = f"ck-lz4-{RUN}"
    fs = CK_ADMIN.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    list(fs.values())[0].result(timeout=WAIT_S)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("compression.type", "lz4", incremental_operation=AlterConfigOpType.SET)])
    list(CK_ADMIN.incremental_alter_configs([res]).values())[0].result(timeout=WAIT_S)
    check(ck_describe(ConfigResource.Type.TOPIC, topic)["compression.type"].value == "lz4",
          "compression.type not lz4")
    p = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": "gzip",
                  "broker.address.family": "v4", "linger.ms": 5})
    want = [f"ck-{i}".encode() for i in range(20)]
    for v in want:
        p.produce(topic, v)
    check(p.flush(WAIT_S) == 0, "undelivered records")
    check(consume_ck(topic, 20) == want, "confluent-kafka read back other records")
    check(consume_kp(topic, 20) == want, "kafka-python read back other records")


def kafka_python_group_configs():
    group = f"billing-{RUN}"
    admin = kp_admin()
    before = kp_configs(admin, ConfigResourceType.GROUP, group)
    check(before.get("consumer.session.timeout.ms") == "45000", f"default {before}")
    admin.alter_configs([KpResource(ConfigResourceType.GROUP, group,
                                    configs={"consumer.session.timeout.ms": "50000"})])
    after = kp_configs(admin, ConfigResourceType.GROUP, group)
    check(after.get("consumer.session.timeout.ms") == "50000", f"after {after}")
    # Out of the broker's bounds: refused with INVALID_CONFIG (40), nothing changed.
    # kafka-python answers {type: {name: "OK" or str(error)}}; str(error) starts with the
    # error's code and class ("[Error 40] InvalidConfigurationError: ...").
    wanted = f"[Error {InvalidConfigurationError.errno}] {InvalidConfigurationError.__name__}:"
    try:
        result = admin.alter_configs([KpResource(ConfigResourceType.GROUP, group,
                                                 configs={"consumer.session.timeout.ms": "70000"})])
        outcome = result.get("group", {}).get(group, f"no answer for the group: {result!r}")
    except InvalidConfigurationError as e:  # raised rather than returned, by version
        outcome = str(e)
    check(InvalidConfigurationError.errno == 40 and str(outcome).startswith(wanted),
          f"an out-of-bounds session timeout was not refused as INVALID_CONFIG: {outcome!r}")
    again = kp_configs(admin, ConfigResourceType.GROUP, group)
    check(again.get("consumer.session.timeout.ms") == "50000", f"changed by a refusal: {again}")
    admin.close()


def broker_resource():
    entries = ck_describe(ConfigResource.Type.BROKER, "1")
    for key in ("listeners", "advertised.listeners", "log.dirs", "num.partitions",
                "default.replication.factor", "min.insync.replicas", "auto.create.topics.enable"):
        check(key in entries, f"{key} not described")
    check(entries["advertised.listeners"].value.endswith(BOOTSTRAP.split(":")[-1]),
          f"advertised.listeners {entries['advertised.listeners'].value}")
    check(entries["num.partitions"].is_read_only, "num.partitions is not read-only")
    check(not entries["compression.type"].is_read_only, "compression.type is read-only")
    res = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
        ConfigEntry("compression.type", "snappy", incremental_operation=AlterConfigOpType.SET)])
    list(CK_ADMIN.incremental_alter_configs([res]).values())[0].result(timeout=WAIT_S)
    check(ck_describe(ConfigResource.Type.BROKER, "1")["compression.type"].value == "snappy",
          "broker compression.type not snappy")
    admin = kp_admin()
    check(kp_configs(admin, ConfigResourceType.BROKER, "1").get("compression.type") == "snappy",
          "kafka-python sees another broker compression.type")
    admin.close()
    res = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
        ConfigEntry("compression.type", None, incremental_operation=AlterConfigOpType.DELETE)])
    list(CK_ADMIN.incremental_alter_configs([res]).values())[0].result(timeout=WAIT_S)
    check(ck_describe(ConfigResource.Type.BROKER, "1")["compression.type"].value == "producer",
          "broker compression.type not reset")


if __name__ == "__main__":
    run_scenarios(NAME, f"{NAME} against {BOOTSTRAP}", [
        ("kafka-python: a gzip producer into a zstd topic, both consumers read it", kafka_python_zstd_topic),
        ("confluent-kafka: an lz4 topic by incremental alter, both consumers read it", confluent_lz4_topic),
        ("kafka-python: group configs altered, described, bounds refused", kafka_python_group_configs),
        ("broker resource: keys clients read, dynamic compression.type altered and reset", broker_resource),
    ], run_timeout(200))
