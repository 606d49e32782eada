#!/usr/bin/env python3
"""Probe of what Kafka transactions cost a confluent-kafka (librdkafka) producer, beside wharf-bench.

Usage: target/kafka-clients/venv/bin/python scripts/bench-txn-probe.py HOST:PORT
Against a running server (its Kafka listener): 600,000 records of 1000 bytes to a new one-partition
topic each, idempotent, then transactional with a commit every 100 ms (timing each
commit_transaction call, its flush included), then idempotent again; prints records/s.
"""
import sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bs = sys.argv[1]
a = AdminClient({"bootstrap.servers": bs})
suffix = str(int(time.time()))
topic_idem, topic_txn = "probe-idem-" + suffix, "probe-txn-" + suffix
for t in (topic_idem, topic_txn):
    a.create_topics([NewTopic(t, 1, 1)])[t].result()
v = b"x" * 1000
N = 600000
base = {"bootstrap.servers": bs, "linger.ms": 5, "batch.num.messages": 1000, "batch.size": 1064000, "queue.buffering.max.kbytes": 1048576}
def idem():
    p = Producer(dict(base, **{"enable.idempotence": True}))
    t0 = time.perf_counter()
    for i in range(N):
        while True:
            try: p.produce(topic_idem, v); break
            except BufferError: p.poll(0.001)
        if i % 1000 == 0: p.poll(0)
    p.flush()
    return N / (time.perf_counter() - t0)
def txn():
    p = Producer(dict(base, **{"transactional.id": "probe-" + suffix}))
    p.init_transactions(30)
    t0 = time.perf_counter(); p.begin_transaction(); tb = t0; cts = []
    for i in range(N):
        while True:
            try: p.produce(topic_txn, v); break
            except BufferError: p.poll(0.001)
        if i % 1000 == 0:
            p.poll(0)
            if time.perf_counter() - tb > 0.1:
                c0 = time.perf_counter(); p.commit_transaction(30); c1 = time.perf_counter(); cts.append((c1-c0)*1000)
                p.begin_transaction(); tb = time.perf_counter()
    p.commit_transaction(30)
    r = N / (time.perf_counter() - t0)
    cts.sort()
    return r, cts[len(cts)//2], cts[-1], len(cts)
print("idem msgs/s", idem())
print("txn msgs/s, commit p50 ms, max, n", txn())
print("idem msgs/s", idem())
