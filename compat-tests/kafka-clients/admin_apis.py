#!/usr/bin/env python3
"""kafka-python's and confluent-kafka's admin clients against a running wharf-server, calling
every cluster-administration API each exposes: describe_log_dirs, alter_replica_log_dirs,
elect_leaders, list/alter_partition_reassignments, describe_metadata_quorum,
list_config_resources, describe_producers, and create_topics/create_partitions with manual
replica assignments naming this node (node 1, the only one).

Usage: admin_apis.py HOST:PORT   (the server's Kafka listener)
WHARF_LOG_DIR: the server's data directory (absolute), what describe_log_dirs must show.
Prints one line per scenario, exits 0 only if all pass.
"""
import os
import sys
import uuid

from confluent_kafka import ElectionType, KafkaException, TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic as CNewTopic
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.errors import (ElectionNotNeededError, InvalidReplicationAssignmentError,
                          LogDirNotFoundError, NoError)

from scenarios import WAIT_S, check, run_scenarios, run_timeout

NAME = "admin-apis"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: admin_apis.py HOST:PORT")
LOG_DIR = os.environ.get("WHARF_LOG_DIR") or sys.exit("WHARF_LOG_DIR is not set")
NODE = 1
RUN = uuid.uuid4().hex[:8]

_KP = []


def kp_admin():
    if not _KP:
        _KP.append(KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=int(WAIT_S * 1000)))
    return _KP[0]


_CK = []


def ck_admin():
    if not _CK:
        _CK.append(AdminClient({"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4"}))
    return _CK[0]


def topic(tag):
    return f"{tag}-{RUN}"


def kp_topic(tag, partitions):
    """A topic made with kafka-python's create_topics (count only)."""
    name = topic(tag)
    kp_admin().create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
    return name


def partition_count(name):
    md = ck_admin().list_topics(name, timeout=WAIT_S)
    t = md.topics[name]
    check(t.error is None, f"{name}: {t.error}")
    return len(t.partitions)


def kp_describe_log_dirs():
    name = kp_topic("logdirs", 2)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for i in range(10):
        producer.send(name, value=f"v{i}".encode(), partition=0)
    producer.flush(WAIT_S)
    producer.close()
    dirs = kp_admin().describe_log_dirs()
    text = repr(dirs)
    check(LOG_DIR in text, f"the data directory {LOG_DIR} in {text[:500]}")
    check(name in text, f"{name} in {text[:500]}")
    # Only what was asked for.
    only = repr(kp_admin().describe_log_dirs(topic_partitions={name: [1]}))
    check(name in only, only[:500])


def kp_alter_replica_log_dirs():
    name = kp_topic("move", 1)
    result = kp_admin().alter_replica_log_dirs({(name, 0, NODE): LOG_DIR})
    errors = list(result.values())
    check(errors == [NoError], f"moving to the data directory: {result}")
    result = kp_admin().alter_replica_log_dirs({(name, 0, NODE): "/not/a/log/dir"})
    errors = list(result.values())
    check(errors == [LogDirNotFoundError], f"moving elsewhere: {result}")


def kp_elect_leaders():
    name = kp_topic("elect", 2)
    r = kp_admin().elect_leaders(0, topic_partitions={name: [0, 1]}, raise_errors=False)
    codes = sorted((p.partition_id, p.error_code)
                   for t in r.replica_election_results for p in t.partition_result)
    want = [(0, ElectionNotNeededError.errno), (1, ElectionNotNeededError.errno)]
    check(codes == want, f"ELECTION_NOT_NEEDED for each: {r}")


def kp_partition_reassignments():
    name = kp_topic("reassign", 2)
    tp = TopicPartition(name, 0)
    result = kp_admin().alter_partition_reassignments({tp: [NODE]})
    check(result.get(tp) is None, f"to this node: {result}")
    result = kp_admin().alter_partition_reassignments({TopicPartition(name, 1): [NODE + 1]})
    check(result.get(TopicPartition(name, 1)) is InvalidReplicationAssignmentError, f"to another: {result}")
    ongoing = kp_admin().list_partition_reassignments()
    check(ongoing == {}, f"nothing in progress: {ongoing}")
    ongoing = kp_admin().list_partition_reassignments({name: [0, 1]})
    check(ongoing == {}, f"nothing in progress for {name}: {ongoing}")


def kp_describe_metadata_quorum():
    q = kp_admin().describe_metadata_quorum()
    text = repr(q)
    topics = q["topics"] if isinstance(q, dict) else None
    check(topics is not None, text[:500])
    p = topics[0]["partitions"][0]
    check(p["error"] is None and p["leader_id"] == NODE, text[:500])
    voters = [v["replica_id"] for v in p["current_voters"]]
    check(voters == [NODE], text[:500])
    nodes = [n["node_id"] for n in q.get("nodes", [])]
    check(nodes == [NODE], f"the voter's node (v2): {text[:500]}")


def kp_list_config_resources():
    name = kp_topic("configs", 1)
    listed = kp_admin().list_config_resources()
    check(name in repr(listed), f"{name} in {listed}")
    check(str(NODE) in repr(listed), f"broker {NODE} in {listed}")
    topics_only = kp_admin().list_config_resources(["TOPIC"])
    check(name in repr(topics_only) and "BROKER" not in repr(topics_only), f"{topics_only}")


def kp_describe_producers():
    name = kp_topic("producers", 1)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all")
    for i in range(4):
        producer.send(name, value=f"v{i}".encode(), partition=0)
    producer.flush(WAIT_S)
    producer.close()
    tp = TopicPartition(name, 0)
    states = kp_admin().describe_producers([tp])
    state = states[tp]
    text = repr(state)
    active = getattr(state, "active_producers", None)
    check(active is not None and len(active) == 1, text)
    check(getattr(active[0], "last_sequence", None) == 3, text)


def kp_create_with_assignments():
    name = topic("kp-assigned")
    kp_admin().create_topics({name: {"assignments": {0: [NODE], 1: [NODE]}}})
    check(partition_count(name) == 2, "two partitions assigned to this node")
    kp_admin().create_partitions({name: {"count": 3, "assignments": [[NODE]]}})
    check(partition_count(name) == 3, "a third partition assigned to this node")
    try:
        kp_admin().create_partitions({name: {"count": 4, "assignments": [[NODE + 1]]}})
        raise AssertionError("an assignment to another broker was accepted")
    except InvalidReplicationAssignmentError:
        pass
    check(partition_count(name) == 3, "no partition added for another broker")
    # A plain count: no assignment, the broker places them.
    kp_admin().create_partitions({name: 5})
    check(partition_count(name) == 5, "grown to five")


def wait(futures):
    """Each future's (result, None) or (None, KafkaError)."""
    out = {}
    for k, f in futures.items():
        try:
            out[k] = (f.result(timeout=WAIT_S), None)
        except KafkaException as e:
            out[k] = (None, e.args[0])
    return out


def ck_create_with_assignments():
    name = topic("ck-assigned")
    done = wait(ck_admin().create_topics([CNewTopic(name, 2, replica_assignment=[[NODE], [NODE]])]))
    check(done[name][1] is None, f"create: {done}")
    check(partition_count(name) == 2, "two partitions assigned to this node")
    done = wait(ck_admin().create_partitions([NewPartitions(name, 3, replica_assignment=[[NODE]])]))
    check(done[name][1] is None, f"grow: {done}")
    check(partition_count(name) == 3, "a third partition")
    done = wait(ck_admin().create_partitions([NewPartitions(name, 4, replica_assignment=[[NODE + 1]])]))
    err = done[name][1]
    check(err is not None and err.code() == 39, f"another broker: {done}")  # INVALID_REPLICA_ASSIGNMENT
    # No assignment: null on the wire, the broker places them.
    done = wait(ck_admin().create_partitions([NewPartitions(name, 5)]))
    check(done[name][1] is None and partition_count(name) == 5, f"grown to five: {done}")
    bad = topic("ck-bad")
    done = wait(ck_admin().create_topics([CNewTopic(bad, 1, replica_assignment=[[NODE + 1]])]))
    err = done[bad][1]
    check(err is not None and err.code() == 39, f"a topic on another broker: {done}")


def ck_elect_leaders():
    name = kp_topic("ck-elect", 2)
    parts = [CTopicPartition(name, 0), CTopicPartition(name, 1)]
    future = ck_admin().elect_leaders(ElectionType.PREFERRED, parts)
    result = future.result(timeout=WAIT_S)
    codes = sorted((tp.partition, e.code() if e is not None else 0) for tp, e in result.items())
    check(codes == [(0, 84), (1, 84)], f"ELECTION_NOT_NEEDED: {result}")


SCENARIOS = [
    ("kafka-python describe_log_dirs", kp_describe_log_dirs),
    ("kafka-python alter_replica_log_dirs", kp_alter_replica_log_dirs),
    ("kafka-python elect_leaders", kp_elect_leaders),
    ("kafka-python list/alter_partition_reassignments", kp_partition_reassignments),
    ("kafka-python describe_metadata_quorum", kp_describe_metadata_quorum),
    ("kafka-python list_config_resources", kp_list_config_resources),
    ("kafka-python describe_producers", kp_describe_producers),
    ("kafka-python create_topics/create_partitions with assignments", kp_create_with_assignments),
    ("confluent-kafka create_topics/create_partitions with assignments", ck_create_with_assignments),
    ("confluent-kafka elect_leaders", ck_elect_leaders),
]

if __name__ == "__main__":
    run_scenarios(NAME, f"{NAME} against {BOOTSTRAP}", SCENARIOS, run_timeout(540))
