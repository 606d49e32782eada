#!/usr/bin/env python3
"""Compaction settings through confluent-kafka's (librdkafka) admin client against a running
wharf-server: CreateTopics with cleanup.policy=compact, DescribeConfigs, and
IncrementalAlterConfigs with APPEND and SUBTRACT on the cleanup.policy list (as Kafka Connect
and Kafka Streams' admin code uses them), DELETE back to the default, the legacy AlterConfigs,
and Kafka's refusals with their error codes.

Usage: compaction_config.py HOST:PORT   (the server's Kafka listener)

Prints one line per scenario, exits 0 only if all pass. WHARF_TEST_TIMEOUT (seconds, default
120) bounds the whole run.
"""
import sys
import uuid

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewTopic)

from scenarios import WAIT_S, check, run_scenarios, run_timeout

NAME = "compaction-config"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: compaction_config.py HOST:PORT")
TOPIC = f"compacted-{uuid.uuid4().hex[:8]}"
ADMIN = AdminClient({"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4"})


def topic_resource(entries=None):
    return ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=entries)


def describe():
    """The topic's configs: {name: ConfigEntry}."""
    fut = ADMIN.describe_configs([topic_resource()])
    return list(fut.values())[0].result(timeout=WAIT_S)


def incremental(*ops):
    """IncrementalAlterConfigs of (name, op, value) on the topic; the error code, or None."""
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, op, v in ops]
    fut = ADMIN.incremental_alter_configs([topic_resource(entries)])
    try:
        list(fut.values())[0].result(timeout=WAIT_S)
        return None
    except KafkaException as e:
        return e.args[0].code()


def source(entry):
    """An entry's source as its ConfigSource number (the library gives an int or the enum)."""
    return getattr(entry.source, "value", entry.source)


def policy():
    return describe()["cleanup.policy"]


def create_compacted():
    new = NewTopic(TOPIC, num_partitions=1, replication_factor=1,
                   config={"cleanup.policy": "compact", "delete.retention.ms": "1000"})
    list(ADMIN.create_topics([new]).values())[0].result(timeout=WAIT_S)
    c = describe()
    p = c["cleanup.policy"]
    check(p.value == "compact", f"cleanup.policy after create: {p.value!r}")
    check(source(p) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, f"source {p.source}")
    check(c["delete.retention.ms"].value == "1000", f"delete.retention.ms {c['delete.retention.ms']}")
    check(c["min.cleanable.dirty.ratio"].value == "0.5", "min.cleanable.dirty.ratio default")


def append_delete():
    err = incremental(("cleanup.policy", AlterConfigOpType.APPEND, "delete"))
    check(err is None, f"APPEND delete: {err}")
    check(policy().value == "compact,delete", f"after APPEND delete: {policy().value!r}")
    # Appending a value already in the list changes nothing.
    check(incremental(("cleanup.policy", AlterConfigOpType.APPEND, "compact")) is None, "APPEND again")
    check(policy().value == "compact,delete", f"after APPEND compact: {policy().value!r}")


def subtract_compact():
    err = incremental(("cleanup.policy", AlterConfigOpType.SUBTRACT, "compact"))
    check(err is None, f"SUBTRACT compact: {err}")
    check(policy().value == "delete", f"after SUBTRACT compact: {policy().value!r}")
    check(incremental(("cleanup.policy", AlterConfigOpType.SUBTRACT, "delete")) is None, "SUBTRACT delete")
    check(policy().value == "", f"an empty policy is allowed: {policy().value!r}")
    check(incremental(("cleanup.policy", AlterConfigOpType.APPEND, "compact")) is None, "APPEND compact")
    check(policy().value == "compact", f"after APPEND compact: {policy().value!r}")


def refusals():
    # APPEND on a config that is not a list: Kafka's INVALID_CONFIG.
    err = incremental(("retention.ms", AlterConfigOpType.APPEND, "1000"))
    check(err == KafkaError.INVALID_CONFIG, f"APPEND on retention.ms: {err}")
    err = incremental(("cleanup.policy", AlterConfigOpType.APPEND, "shred"))
    check(err == KafkaError.INVALID_CONFIG, f"APPEND shred: {err}")
    err = incremental(("min.cleanable.dirty.ratio", AlterConfigOpType.SET, "1.5"))
    check(err == KafkaError.INVALID_CONFIG, f"ratio 1.5: {err}")
    err = incremental(("min.compaction.lag.ms", AlterConfigOpType.SET, "5000"),
                      ("max.compaction.lag.ms", AlterConfigOpType.SET, "4000"))
    check(err == KafkaError.INVALID_CONFIG, f"min lag over max lag: {err}")
    # A refused request changes nothing, not even its valid configs.
    c = describe()
    check(c["min.compaction.lag.ms"].value == "0", f"min lag kept: {c['min.compaction.lag.ms'].value}")
    check(policy().value == "compact", "policy kept")


def set_and_delete():
    err = incremental(("min.compaction.lag.ms", AlterConfigOpType.SET, "100"),
                      ("max.compaction.lag.ms", AlterConfigOpType.SET, "60000"),
                      ("min.cleanable.dirty.ratio", AlterConfigOpType.SET, "0.01"))
    check(err is None, f"SET: {err}")
    c = describe()
    check(c["max.compaction.lag.ms"].value == "60000", "max lag set")
    check(c["min.cleanable.dirty.ratio"].value == "0.01", f"ratio {c['min.cleanable.dirty.ratio'].value}")
    err = incremental(("max.compaction.lag.ms", AlterConfigOpType.DELETE, None),
                      ("cleanup.policy", AlterConfigOpType.DELETE, None))
    check(err is None, f"DELETE: {err}")
    c = describe()
    check(c["max.compaction.lag.ms"].value == "9223372036854775807", "max lag back to default")
    check(source(c["max.compaction.lag.ms"]) == ConfigSource.DEFAULT_CONFIG.value, "default source")
    check(c["cleanup.policy"].value == "delete", "policy back to default")
    check(c["min.compaction.lag.ms"].value == "100", "a config not deleted is kept")


def legacy_alter_configs():
    """The legacy AlterConfigs API (key 33): the listed configs become the topic's whole set."""
    res = ConfigResource(ConfigResource.Type.TOPIC, TOPIC,
                         set_config={"cleanup.policy": "compact,delete", "segment.ms": "3600000"})
    list(ADMIN.alter_configs([res]).values())[0].result(timeout=WAIT_S)
    c = describe()
    check(c["cleanup.policy"].value == "compact,delete", f"policy {c['cleanup.policy'].value!r}")
    check(c["segment.ms"].value == "3600000", "segment.ms set")
    check(c["min.compaction.lag.ms"].value == "0", "an unlisted config returns to its default")
    check(source(c["min.compaction.lag.ms"]) == ConfigSource.DEFAULT_CONFIG.value, "default source")
    bad = ConfigResource(ConfigResource.Type.TOPIC, TOPIC,
                         set_config={"cleanup.policy": "compact", "delete.retention.ms": "-1"})
    try:
        list(ADMIN.alter_configs([bad]).values())[0].result(timeout=WAIT_S)
        check(False, "delete.retention.ms=-1 was accepted")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.INVALID_CONFIG, f"refusal: {e}")
    check(policy().value == "compact,delete", "a refused set changes nothing")


run_scenarios(NAME, f"{NAME} against {BOOTSTRAP}", [
    ("create a compacted topic", create_compacted),
    ("APPEND delete to cleanup.policy", append_delete),
    ("SUBTRACT from cleanup.policy", subtract_compact),
    ("Kafka's refusals", refusals),
    ("SET and DELETE", set_and_delete),
    ("legacy AlterConfigs replaces the set", legacy_alter_configs),
], run_timeout(120))
