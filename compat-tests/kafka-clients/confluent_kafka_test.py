#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a running wharf-server.

Usage: confluent_kafka_test.py HOST:PORT   (the server's Kafka listener)

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for librdkafka's protocol/broker debug log on stderr.
WHARF_TEST_TIMEOUT (seconds, default 540) bounds the whole run.
The round-trip scenarios read with assign(); the group scenarios subscribe() in consumer groups.
"""
import os
import sys
import time
import uuid

from confluent_kafka import (OFFSET_BEGINNING, OFFSET_INVALID, TIMESTAMP_CREATE_TIME, Consumer,
                             ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from scenarios import Failed, WAIT_S, check, run_scenarios, run_timeout

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N_RECORDS = 10_000
NAME = "confluent-kafka"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: confluent_kafka_test.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]  # makes the group scenarios' topic and group names unique


def conf(**extra):
    c = {"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4"}
    if os.environ.get("WHARF_CLIENT_DEBUG"):
        c["debug"] = "protocol,broker,topic,msg,cgrp"
    c.update({k.replace("_", "."): v for k, v in extra.items()})
    return c


_ADMIN = []


def admin():
    """One AdminClient for the run: a handle must outlive the futures it returned."""
    if not _ADMIN:
        _ADMIN.append(AdminClient(conf()))
    return _ADMIN[0]


def wait_futures(futures, what):
    """Resolves a dict of admin futures; raises with every error."""
    errors = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=WAIT_S)
        except Exception as e:  # KafkaException, or a timeout
            errors.append(f"{name}: {e!r}")
    check(not errors, f"{what}: {errors}")


def create_topics(*topics, config=None):
    new = [NewTopic(t, num_partitions=p, replication_factor=1, config=config or {}) for t, p in topics]
    wait_futures(admin().create_topics(new, operation_timeout=WAIT_S, request_timeout=WAIT_S), "create_topics")


def records(n, tag):
    """(key, value, headers) in send order; two headers with distinct values each."""
    return [(f"key-{i}".encode(), f"{tag} value {i} {'x' * (i % 50)}".encode(),
             [("n", str(i).encode()), ("tag", f"{tag}-{i}".encode())]) for i in range(n)]


def produce(producer, topic, recs, partition=None):
    """Sends recs; returns the partition each one went to, from the delivery reports."""
    placed, errors = [None] * len(recs), []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append(f"record {i}: {err}")
            else:
                placed[i] = (msg.partition(), msg.offset())
        return cb

    deadline = time.monotonic() + WAIT_S
    for i, (k, v, h) in enumerate(recs):
        kw = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(topic, value=v, key=k, headers=h, on_delivery=report(i), **kw)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                check(time.monotonic() < deadline, f"producer queue still full after {WAIT_S}s")
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(WAIT_S)
    check(left == 0, f"{left} records still undelivered after {WAIT_S}s")
    check(not errors, f"delivery errors: {errors[:5]} ({len(errors)} in all)")
    # Offsets per partition must be 0.. in send order.
    per = {}
    for i, (p, off) in enumerate(placed):
        per.setdefault(p, []).append(off)
    for p, offs in per.items():
        check(offs == list(range(len(offs))), f"partition {p}: delivery offsets not 0..n in send order")
    return [p for p, _ in placed]


def consume(topic, partitions, n):
    """Reads every partition from the beginning until all hit EOF; returns (partition, offset, key, value, headers, ts)."""
    c = Consumer(conf(enable_partition_eof=True, enable_auto_commit=False, group_id="wharf-compat-unused"))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out, eof, deadline = [], set(), time.monotonic() + WAIT_S
        while len(eof) < partitions or len(out) < n:
            check(time.monotonic() < deadline, f"consumed {len(out)} of {n} records, EOF on {sorted(eof)} after {WAIT_S}s")
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise Failed(f"consumer error: {m.error()}")
            eof.discard(m.partition())
            out.append((m.partition(), m.offset(), m.key(), m.value(), m.headers() or [], m.timestamp()))
        return out
    finally:
        c.close()


def check_round_trip(got, recs, partitions_sent, what):
    want = sorted((p, k, v, h) for p, (k, v, h) in zip(partitions_sent, recs))
    have = sorted((p, k, v, h) for p, _, k, v, h, _ in got)
    check(len(have) == len(want), f"{what}: read {len(have)} records, sent {len(want)}")
    check(have == want, f"{what}: the records read differ from those sent")
    for p in set(partitions_sent):
        sent = [k for q, (k, _, _) in zip(partitions_sent, recs) if q == p]
        read = [k for q, _, k, _, _, _ in got if q == p]
        check(read == sent, f"{what}: partition {p} order differs from send order")
        offs = [o for q, o, *_ in got if q == p]
        check(offs == list(range(len(offs))), f"{what}: partition {p} offsets not 0..n")


def scenario_codecs():
    for codec in CODECS:
        topic = f"cfk-codec-{codec}"
        create_topics((topic, 3))
        recs = records(N_RECORDS, codec)
        parts = produce(Producer(conf(compression_type=codec, linger_ms=5, acks="all")), topic, recs)
        check(set(parts) == {0, 1, 2}, f"{codec}: the partitioner used only partitions {set(parts)}")
        check_round_trip(consume(topic, 3, len(recs)), recs, parts, codec)
        print(f"    {codec}: {len(recs)} records round-tripped", flush=True)


def scenario_idempotent():
    topic = "cfk-idempotent"
    create_topics((topic, 1))
    recs = records(5_000, "idem")
    p = Producer(conf(enable_idempotence=True, linger_ms=2))
    parts = produce(p, topic, recs, partition=0)
    check_round_trip(consume(topic, 1, len(recs)), recs, parts, "idempotent")


def scenario_admin():
    a = admin()
    create_topics(("cfk-adm-a", 2), ("cfk-adm-b", 1))
    create_topics(("cfk-adm-c", 1), config={"retention.ms": "3600000"})
    md = a.list_topics(timeout=WAIT_S)
    for t, n in [("cfk-adm-a", 2), ("cfk-adm-b", 1), ("cfk-adm-c", 1)]:
        check(t in md.topics, f"list_topics lacks {t}: {sorted(md.topics)}")
        check(md.topics[t].error is None, f"{t}: metadata error {md.topics[t].error}")
        check(len(md.topics[t].partitions) == n, f"{t}: {len(md.topics[t].partitions)} partitions, want {n}")
    fut = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "cfk-adm-c")], request_timeout=WAIT_S)
    cfg = list(fut.values())[0].result(timeout=WAIT_S)
    check("retention.ms" in cfg, f"describe_configs lacks retention.ms: {sorted(cfg)}")
    check(cfg["retention.ms"].value == "3600000", f"retention.ms = {cfg['retention.ms'].value!r}, want '3600000'")
    check(not cfg["retention.ms"].is_default, f"retention.ms set at creation reported as a default: {cfg['retention.ms']}")
    again = admin().create_topics([NewTopic("cfk-adm-a", num_partitions=2, replication_factor=1)], request_timeout=WAIT_S)
    try:
        again["cfk-adm-a"].result(timeout=WAIT_S)
        raise Failed("creating an existing topic succeeded")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, f"creating an existing topic: {e}, want TOPIC_ALREADY_EXISTS")
    names = ["cfk-adm-a", "cfk-adm-b", "cfk-adm-c"]
    wait_futures(a.delete_topics(names, operation_timeout=WAIT_S, request_timeout=WAIT_S), "delete_topics")
    deadline = time.monotonic() + WAIT_S
    while True:
        left = [t for t in names if t in a.list_topics(timeout=WAIT_S).topics]
        if not left:
            break
        check(time.monotonic() < deadline, f"still listed {WAIT_S}s after delete: {left}")
        time.sleep(0.1)  # polling interval, not synchronisation


def scenario_offsets_for_times():
    topic = "cfk-times"
    create_topics((topic, 1))
    base = (int(time.time()) - 600) * 1000
    p = Producer(conf(linger_ms=0))
    errors = []
    for i in range(10):
        p.produce(topic, key=b"k", value=f"v{i}".encode(), partition=0, timestamp=base + i * 1000,
                  on_delivery=lambda err, msg: err and errors.append(err))
        check(p.flush(WAIT_S) == 0, "timestamped record not delivered")
    check(not errors, f"delivery errors: {errors}")
    got = consume(topic, 1, 10)
    check([ts for *_, ts in got] == [(TIMESTAMP_CREATE_TIME, base + i * 1000) for i in range(10)],
          f"timestamps read back differ: {[ts for *_, ts in got]}")
    c = Consumer(conf(group_id="wharf-compat-unused"))
    try:
        for ts, want in [(base + 3500, 4), (base, 0), (base + 9000, 9), (base + 60_000, -1)]:
            found = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=WAIT_S)[0]
            check(found.error is None, f"offsets_for_times({ts}): {found.error}")
            check(found.offset == want, f"offsets_for_times(base+{ts - base}) = {found.offset}, want {want}")
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=WAIT_S)
        check((lo, hi) == (0, 10), f"watermarks ({lo}, {hi}), want (0, 10)")
    finally:
        c.close()


def group_consumer(group, client_id):
    """A subscribing consumer: manual commits, short sessions so rebalances are quick."""
    return Consumer(conf(group_id=group, client_id=client_id, enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=6000, heartbeat_interval_ms=500, max_poll_interval_ms=20000))


# A commit that races a rebalance may be refused with one of these (Kafka semantics, not a
# failure): the partition's next owner reads again from the last commit that got through.
REBALANCE_ERRORS = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID}


def commit(c, topic, offsets, rebalance_ok=False):
    """Commits {partition: next offset to read} synchronously; False if refused for a rebalance."""
    try:
        done = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    except KafkaException as e:
        if rebalance_ok and e.args[0].code() in REBALANCE_ERRORS:
            return False
        raise Failed(f"commit {offsets}: {e}")
    errors = [tp for tp in done if tp.error is not None]
    if errors and rebalance_ok and all(tp.error.code() in REBALANCE_ERRORS for tp in errors):
        return False
    check(not errors, f"commit {offsets}: {errors}")
    return True


def committed(c, topic, partitions):
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=WAIT_S)
    check(all(tp.error is None for tp in got), f"committed(): {got}")
    return {tp.partition: tp.offset for tp in got}


def produce_for_group(topic, partitions, n, tag):
    """Creates topic and sends n keyed records; returns ({(partition, offset): value}, {partition: end offset})."""
    create_topics((topic, partitions))
    recs = records(n, tag)
    parts = produce(Producer(conf(linger_ms=5)), topic, recs)
    check(set(parts) == set(range(partitions)), f"the partitioner used only partitions {set(parts)}")
    sent, ends = {}, {p: 0 for p in range(partitions)}
    for p, (_, v, _) in zip(parts, recs):
        sent[(p, ends[p])] = v
        ends[p] += 1
    return sent, ends


def read_group(c, topic, start, stop, sent, what):
    """Polls c until it has read every partition p in order from start[p] up to stop[p]."""
    nxt, deadline = dict(start), time.monotonic() + WAIT_S
    while any(nxt[p] < stop[p] for p in stop):
        check(time.monotonic() < deadline, f"{what}: read up to {nxt} of {stop} within {WAIT_S}s "
                                           f"(assignment {[tp.partition for tp in c.assignment()]})")
        for m in c.consume(num_messages=500, timeout=0.2):
            check(not m.error(), f"{what}: consumer error {m.error()}")
            p, o = m.partition(), m.offset()
            if o >= stop[p] and nxt[p] >= stop[p]:
                continue  # read ahead, past what this reader wants
            check(o == nxt[p], f"{what}: partition {p}: read offset {o}, want {nxt[p]}")
            check(m.value() == sent[(p, o)], f"{what}: partition {p} offset {o}: value {m.value()!r}, sent {sent[(p, o)]!r}")
            nxt[p] += 1


def scenario_group_consume_commit():
    topic = group = f"cfk-grp-commit-{RUN}"
    sent, ends = produce_for_group(topic, 3, 3000, "group")
    consumers = [group_consumer(group, f"cfk-member-{i}") for i in (1, 2)]
    try:
        for c in consumers:
            c.subscribe([topic])
        seen, refused, last_committed = {}, 0, None
        deadline = time.monotonic() + WAIT_S
        while True:
            for c in consumers:
                msgs = c.consume(num_messages=500, timeout=0.1)
                nxt = {}
                for m in msgs:
                    check(not m.error(), f"consumer error {m.error()}")
                    seen[(m.partition(), m.offset())] = m.value()
                    nxt[m.partition()] = m.offset() + 1
                if nxt and not commit(c, topic, nxt, rebalance_ok=True):
                    refused += 1
            shares = [{tp.partition for tp in c.assignment()} for c in consumers]
            both_in = all(shares) and not shares[0] & shares[1] and shares[0] | shares[1] == {0, 1, 2}
            if both_in and len(seen) == len(sent):
                last_committed = committed(consumers[0], topic, 3)
                if last_committed == ends:
                    break
            check(time.monotonic() < deadline,
                  f"after {WAIT_S}s: read {len(seen)} of {len(sent)} distinct records; assignments {shares} "
                  f"(want two disjoint non-empty shares of 0-2); committed {last_committed}, end offsets {ends}; "
                  f"{refused} commits refused for a rebalance")
        check(seen.keys() == sent.keys(), f"read (partition, offset)s outside those sent: {sorted(seen.keys() - sent.keys())[:5]}")
        bad = [k for k in sent if seen[k] != sent[k]]
        check(not bad, f"values read differ from those sent at {bad[:5]}")
    finally:
        for c in consumers:
            c.close()


def scenario_group_resume():
    topic = group = f"cfk-grp-resume-{RUN}"
    sent, ends = produce_for_group(topic, 2, 1000, "resume")
    half = {p: n // 2 for p, n in ends.items()}
    first = group_consumer(group, "cfk-resume-1")
    try:
        check(committed(first, topic, 2) == {0: OFFSET_INVALID, 1: OFFSET_INVALID}, "a new group has committed offsets")
        first.subscribe([topic])
        read_group(first, topic, {0: 0, 1: 0}, half, sent, "first consumer")
        commit(first, topic, half)
    finally:
        first.close()
    second = group_consumer(group, "cfk-resume-2")
    try:
        got = committed(second, topic, 2)
        check(got == half, f"committed offsets {got} after the first consumer closed, want {half}")
        second.subscribe([topic])
        read_group(second, topic, half, ends, sent, "second consumer")  # must start exactly at half
        commit(second, topic, ends)
        got = committed(second, topic, 2)
        check(got == ends, f"committed offsets {got} after the second consumer, want {ends}")
    finally:
        second.close()


def scenario_group_admin():
    topic = group = f"cfk-grp-admin-{RUN}"
    client_id = f"cfk-admin-member-{RUN}"
    sent, ends = produce_for_group(topic, 2, 200, "admin")
    a = admin()
    want_tps = [(topic, 0), (topic, 1)]
    c = group_consumer(group, client_id)
    try:
        c.subscribe([topic])
        read_group(c, topic, {0: 0, 1: 0}, ends, sent, "consumer")
        commit(c, topic, ends)
        d = a.describe_consumer_groups([group], request_timeout=WAIT_S)[group].result(timeout=WAIT_S)
        check(d.state == ConsumerGroupState.STABLE, f"describe with an active member: state {d.state}, want STABLE")
        check(not d.is_simple_consumer_group, "describe: reported as a simple consumer group")
        check(d.partition_assignor == "range", f"describe: assignor {d.partition_assignor!r}, want 'range'")
        check(len(d.members) == 1, f"describe: {len(d.members)} members, want 1: {d.members}")
        m = d.members[0]
        check(m.client_id == client_id, f"describe: member client id {m.client_id!r}, want {client_id!r}")
        got = sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
        check(got == want_tps, f"describe: member assignment {got}, want {want_tps}")
        listed = a.list_consumer_groups(request_timeout=WAIT_S).result(timeout=WAIT_S)
        check(not listed.errors, f"list_consumer_groups errors: {listed.errors}")
        mine = [g for g in listed.valid if g.group_id == group]
        check(len(mine) == 1, f"list_consumer_groups lacks {group}: {[g.group_id for g in listed.valid]}")
        check(mine[0].state == ConsumerGroupState.STABLE, f"list_consumer_groups: state {mine[0].state}, want STABLE")
    finally:
        c.close()
    d = a.describe_consumer_groups([group], request_timeout=WAIT_S)[group].result(timeout=WAIT_S)
    check(d.state == ConsumerGroupState.EMPTY, f"describe after the consumer closed: state {d.state}, want EMPTY")
    check(not d.members, f"describe after the consumer closed: members {d.members}")
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=WAIT_S)[group].result(timeout=WAIT_S)
    got = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}
    check(got == {(topic, p): n for p, n in ends.items()}, f"list_consumer_group_offsets {got}, want end offsets {ends}")
    wait_futures(a.delete_consumer_groups([group], request_timeout=WAIT_S), "delete_consumer_groups")
    listed = a.list_consumer_groups(request_timeout=WAIT_S).result(timeout=WAIT_S)
    check(group not in [g.group_id for g in listed.valid], f"{group} still listed after delete_consumer_groups")
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in ends])],
                                        request_timeout=WAIT_S)[group].result(timeout=WAIT_S)
    got = {tp.partition: tp.offset for tp in res.topic_partitions}
    check(got == {p: OFFSET_INVALID for p in ends}, f"committed offsets after delete_consumer_groups: {got}, want none")
    again = a.delete_consumer_groups([group], request_timeout=WAIT_S)[group]
    try:
        again.result(timeout=WAIT_S)
        raise Failed("deleting a deleted group succeeded")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, f"deleting a deleted group: {e}, want GROUP_ID_NOT_FOUND")


SCENARIOS = [
    ("produce+consume 10k keyed records with headers, every codec", scenario_codecs),
    ("idempotent producer", scenario_idempotent),
    ("admin create/list/describe/delete topics", scenario_admin),
    ("offsets_for_times (ListOffsets by timestamp)", scenario_offsets_for_times),
    ("group_consume_commit: two subscribers share 3 partitions, commit per batch", scenario_group_consume_commit),
    ("group_resume: a new member resumes from the group's committed offsets", scenario_group_resume),
    ("group_admin: describe/list groups, list group offsets, delete group", scenario_group_admin),
]


def main():
    run_scenarios(NAME, f"confluent-kafka {__import__('confluent_kafka').__version__} "
        f"(librdkafka {__import__('confluent_kafka').libversion()[0]}) against {BOOTSTRAP}",
        SCENARIOS, run_timeout(540))


if __name__ == "__main__":
    main()
