#!/usr/bin/env node
// kafkajs against a wharf-server Kafka listener with SASL over TLS.
//
// Usage: NODE_PATH=target/kafka-clients/node/node_modules node secure_kafkajs.js HOST:PORT
//   (a SASL_SSL Kafka listener)
// Environment (the Rust harness compat-tests/tests/kafka_clients_secure.rs sets it up):
//   WHARF_CA_FILE                 PEM CA certificate that signed the server's certificate
//   WHARF_USER, WHARF_PASSWORD    a user who may send to and poll both topics
//   WHARF_READER, WHARF_READER_PASSWORD   a user who may read WHARF_TOPIC_A only
//   WHARF_TOPIC_A, WHARF_TOPIC_B  two existing one-partition topics, empty at start
//
// Runs every scenario, prints one line per scenario, exits 0 only if all pass.
// Set WHARF_CLIENT_DEBUG=1 for kafkajs's DEBUG log on stderr.
// WHARF_TEST_TIMEOUT (seconds, default 300) bounds the whole run.
//
// Reading back: kafkajs has no manual partition assignment (its consumer always joins a group),
// so records are read with kafkajs's own Cluster/Broker classes, the ones its consumer fetches
// with, over the same SASL_SSL connection settings (as in kafkajs_test.js).
'use strict'
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const { createLogger } = require('kafkajs/src/loggers')
const socketFactory = require('kafkajs/src/network/socketFactory')

const WAIT_MS = 60000 // the bound on every wait
const N_RECORDS = 200
const NAME = 'secure kafkajs'
const BOOTSTRAP = process.argv[2]
if (!BOOTSTRAP) { console.error('usage: secure_kafkajs.js HOST:PORT'); process.exit(2) }
const ENV = {}
for (const k of ['WHARF_CA_FILE', 'WHARF_USER', 'WHARF_PASSWORD', 'WHARF_READER', 'WHARF_READER_PASSWORD', 'WHARF_TOPIC_A', 'WHARF_TOPIC_B']) {
  if (!process.env[k]) { console.error(`${k} is not set`); process.exit(2) }
  ENV[k] = process.env[k]
}
const TOPIC_A = ENV.WHARF_TOPIC_A
const TOPIC_B = ENV.WHARF_TOPIC_B
const MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512']
const SENT = { [TOPIC_A]: [], [TOPIC_B]: [] } // values sent so far, in order, per topic
const SSL = { ca: [fs.readFileSync(ENV.WHARF_CA_FILE, 'utf8')] }
const LOG_LEVEL = process.env.WHARF_CLIENT_DEBUG ? logLevel.DEBUG : logLevel.NOTHING
// kafkajs's own console logger writes to stdout; keep stdout for the scenario lines.
const logCreator = () => ({ namespace, label, log }) => process.stderr.write(JSON.stringify({ label, namespace, ...log }) + '\n')

class Failed extends Error {}
const check = (cond, what) => { if (!cond) throw new Failed(what) }
const jsonish = v => JSON.stringify(v).slice(0, 400)

function client (mechanism, username, password, retries = 5) {
  return new Kafka({
    clientId: 'wharf-compat-secure',
    brokers: [BOOTSTRAP],
    ssl: SSL,
    sasl: { mechanism, username, password },
    logLevel: LOG_LEVEL,
    logCreator,
    requestTimeout: 30000,
    retry: { retries }
  })
}

// Sends values to partition 0 of topic; checks the offsets kafkajs reports.
async function produce (kafka, topic, values) {
  const producer = kafka.producer()
  await producer.connect()
  try {
    const res = await producer.send({ topic, acks: -1, messages: values.map(value => ({ value, partition: 0 })) })
    const first = SENT[topic].length
    check(res.length === 1 && res[0].errorCode === 0 && Number(res[0].baseOffset) === first,
      `send to ${topic}: ${jsonish(res)}, want base offset ${first}`)
  } finally {
    await producer.disconnect()
  }
  SENT[topic].push(...values)
}

// Reads partition 0 of topic from offset 0 up to its high watermark; returns the values.
async function consume (mechanism, username, password, topic) {
  const cluster = new Cluster({
    logger: createLogger({ level: LOG_LEVEL, logCreator }),
    socketFactory: socketFactory(),
    brokers: [BOOTSTRAP],
    ssl: SSL,
    sasl: { mechanism, username, password },
    clientId: 'wharf-compat-secure-reader',
    connectionTimeout: 10000,
    authenticationTimeout: 10000,
    requestTimeout: 30000,
    enforceRequestTimeout: true,
    metadataMaxAge: 300000,
    allowAutoTopicCreation: false,
    isolationLevel: 1 // READ_COMMITTED, what a kafkajs consumer asks for by default
  })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    const [{ partitions: [{ offset: high }] }] = await cluster.fetchTopicsOffset([{ topic, fromBeginning: false, partitions: [{ partition: 0 }] }])
    const leader = cluster.findTopicPartitionMetadata(topic).find(m => m.partitionId === 0).leader
    const broker = await cluster.findBroker({ nodeId: String(leader) })
    const out = []
    const deadline = Date.now() + WAIT_MS
    while (out.length < Number(high)) {
      check(Date.now() < deadline, `${topic}: read ${out.length} of ${high} within ${WAIT_MS}ms`)
      const res = await broker.fetch({
        isolationLevel: 1, maxWaitTime: 100, minBytes: 1, maxBytes: 1048576,
        topics: [{ topic, partitions: [{ partition: 0, fetchOffset: String(out.length), maxBytes: 1048576 }] }]
      })
      const part = res.responses[0].partitions[0]
      check(part.errorCode === 0, `fetch ${topic}/0@${out.length}: error code ${part.errorCode}`)
      for (const m of part.messages) {
        if (Number(m.offset) < out.length) continue // a batch may start before the fetch offset
        check(Number(m.offset) === out.length, `${topic}: offset ${m.offset} after ${out.length - 1}`)
        out.push(m.value.toString())
      }
    }
    return out
  } finally {
    await cluster.disconnect()
  }
}

const sameList = (a, b) => a.length === b.length && a.every((v, i) => v === b[i])

function scenarioMechanism (mechanism) {
  return async () => {
    const values = Array.from({ length: N_RECORDS }, (_, i) => `${mechanism} record ${i}`)
    await produce(client(mechanism, ENV.WHARF_USER, ENV.WHARF_PASSWORD), TOPIC_A, values)
    const got = await consume(mechanism, ENV.WHARF_USER, ENV.WHARF_PASSWORD, TOPIC_A)
    check(sameList(got, SENT[TOPIC_A]), `read ${got.length} records from ${TOPIC_A}, sent ${SENT[TOPIC_A].length} (or in another order)`)
  }
}

async function scenarioReader () {
  await produce(client('scram-sha-512', ENV.WHARF_USER, ENV.WHARF_PASSWORD), TOPIC_B, ["for the writer's eyes"])
  let got = await consume('scram-sha-512', ENV.WHARF_USER, ENV.WHARF_PASSWORD, TOPIC_B)
  check(sameList(got, SENT[TOPIC_B]), `the writer read ${jsonish(got)} from ${TOPIC_B}, sent ${jsonish(SENT[TOPIC_B])}`)
  got = await consume('scram-sha-512', ENV.WHARF_READER, ENV.WHARF_READER_PASSWORD, TOPIC_A)
  check(got.length > 0 && sameList(got, SENT[TOPIC_A]), `the reader read ${got.length} records from ${TOPIC_A}, want the ${SENT[TOPIC_A].length} sent`)
  // The public consumer API: subscribing looks the topic up, and the answer refuses it.
  const consumer = client('scram-sha-512', ENV.WHARF_READER, ENV.WHARF_READER_PASSWORD).consumer({ groupId: 'secure-reader' })
  await consumer.connect()
  try {
    const e = await consumer.subscribe({ topics: [TOPIC_B], fromBeginning: true }).then(() => null, e => e)
    check(e !== null, `the reader subscribed to ${TOPIC_B}, want TOPIC_AUTHORIZATION_FAILED`)
    check(e.name === 'KafkaJSProtocolError' && e.type === 'TOPIC_AUTHORIZATION_FAILED',
      `the reader subscribing to ${TOPIC_B}: ${e.stack}, want KafkaJSProtocolError TOPIC_AUTHORIZATION_FAILED`)
    console.log(`    ${TOPIC_B}: ${e.name} ${e.type}`)
  } finally {
    await consumer.disconnect()
  }
}

async function scenarioWrongPassword () {
  for (const mechanism of ['plain', 'scram-sha-512']) {
    const producer = client(mechanism, ENV.WHARF_USER, 'not the password', 0).producer()
    const e = await producer.connect().then(() => null, e => e)
    await producer.disconnect()
    check(e !== null, `${mechanism}: a wrong password connected`)
    check(e.name === 'KafkaJSSASLAuthenticationError', `${mechanism}: ${e.stack}, want KafkaJSSASLAuthenticationError`)
    console.log(`    ${mechanism}: ${e.name}: ${e.message}`)
  }
}

const SCENARIOS = [
  ...MECHANISMS.map(m => [`SASL_SSL ${m}: produce ${N_RECORDS} records and read them back`, scenarioMechanism(m)]),
  ['a user who may read topic A only reads A and gets TOPIC_AUTHORIZATION_FAILED on B', scenarioReader],
  // Last: failed logins count against the user and address (the server's login limiter).
  ['a wrong password (plain, scram-sha-512) fails with KafkaJSSASLAuthenticationError', scenarioWrongPassword]
]

async function main () {
  // A bound on the whole run, even if a client call never settles.
  const limit = Number(process.env.WHARF_TEST_TIMEOUT || 300)
  setTimeout(() => { console.log(`FAIL ${NAME}: the whole run took over ${limit}s; stopped`); process.exit(1) }, limit * 1000).unref()
  console.log(`kafkajs ${require('kafkajs/package.json').version} against ${BOOTSTRAP} (SASL_SSL)`)
  let failed = 0
  for (const [name, fn] of SCENARIOS) {
    const start = Date.now()
    try {
      await fn()
      console.log(`PASS ${name} (${((Date.now() - start) / 1000).toFixed(1)}s)`)
    } catch (e) {
      failed += 1
      console.log(`FAIL ${name} (${((Date.now() - start) / 1000).toFixed(1)}s): ${e instanceof Failed ? e.message : e.stack}`)
    }
  }
  console.log(`${NAME}: ${SCENARIOS.length - failed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}

main()
