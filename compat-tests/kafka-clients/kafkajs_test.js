#!/usr/bin/env node
// kafkajs against a running wharf-server.
//
// Usage: NODE_PATH=target/kafka-clients/node/node_modules node kafkajs_test.js HOST:PORT
//
// Runs every scenario, prints one line per scenario, exits 0 only if all pass.
// Set WHARF_CLIENT_DEBUG=1 for kafkajs's DEBUG log (protocol traffic) on stderr.
// WHARF_TEST_TIMEOUT (seconds, default 540) bounds the whole run.
//
// Reading back in the round-trip scenarios: kafkajs has no manual partition assignment (its
// consumer always joins a group). So records are read with kafkajs's own Cluster/Broker
// classes (the ones its consumer fetches with): kafkajs still encodes the Fetch requests and
// decodes (and decompresses) the batches. The group scenarios use kafkajs's consumer.
'use strict'
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, AssignerProtocol, CompressionTypes, CompressionCodecs, ConfigResourceTypes, Partitioners, logLevel } = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const { createLogger } = require('kafkajs/src/loggers')
const socketFactory = require('kafkajs/src/network/socketFactory')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
// No kafkajs zstd codec package works here (scripts/kafka-clients says why): a codec is
// just compress/decompress over whole buffers, so register one over zstd-napi.
const zstd = require('zstd-napi')
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: async encoder => zstd.compress(encoder.buffer),
  decompress: async buffer => zstd.decompress(buffer) // also frames without a content size
})
const CODECS = {
  none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD
}

const WAIT_MS = 60000 // the bound on every wait
const N_RECORDS = 10000
const BOOTSTRAP = process.argv[2]
const RUN = require('crypto').randomBytes(4).toString('hex') // makes the group scenarios' names unique
if (!BOOTSTRAP) { console.error('usage: kafkajs_test.js HOST:PORT'); process.exit(2) }
const LOG_LEVEL = process.env.WHARF_CLIENT_DEBUG ? logLevel.DEBUG : logLevel.ERROR
// kafkajs's own console logger writes to stdout; keep stdout for the scenario lines.
const logCreator = () => ({ namespace, label, log }) => process.stderr.write(JSON.stringify({ label, namespace, ...log }) + '\n')
const kafka = new Kafka({ clientId: 'wharf-compat', brokers: [BOOTSTRAP], logLevel: LOG_LEVEL, logCreator, requestTimeout: 30000 })

class Failed extends Error {}
const check = (cond, what) => { if (!cond) throw new Failed(what) }
const deadlineFrom = () => Date.now() + WAIT_MS
const jsonish = v => JSON.stringify(v).slice(0, 400)

async function withAdmin (fn) {
  const admin = kafka.admin()
  await admin.connect()
  try { return await fn(admin) } finally { await admin.disconnect() }
}

async function createTopics (topics, configEntries = [], want = true) {
  await withAdmin(async admin => {
    const created = await admin.createTopics({
      topics: topics.map(([topic, numPartitions]) => ({ topic, numPartitions, replicationFactor: 1, configEntries })),
      waitForLeaders: true,
      timeout: 30000
    })
    // kafkajs answers false, not an error, when a topic already exists.
    check(created === want, `createTopics returned ${created} for ${topics}, want ${want}`)
  })
}

// (key, value, headers) in send order; two headers with distinct values each.
function records (n, tag) {
  return Array.from({ length: n }, (_, i) => ({
    key: `key-${i}`, value: `${tag} value ${i} ${'x'.repeat(i % 50)}`, headers: { n: `${i}`, tag: `${tag}-${i}` }
  }))
}

// kafkajs does not say which partition each message went to: every producer here uses
// kafkajs's default partitioner, wrapped to note its choice per message object.
const PLACED = new WeakMap()
function newProducer (opts = {}) {
  const createPartitioner = () => {
    const inner = Partitioners.DefaultPartitioner()
    return args => { const p = inner(args); PLACED.set(args.message, p); return p }
  }
  return kafka.producer({ ...opts, createPartitioner })
}

// Sends recs in chunks, one send() at a time; returns the partition each record went to.
// Each send() answers, per partition, the base offset: it must follow what was sent before.
async function produce (producer, topic, recs, { compression = CompressionTypes.None, chunk = 500 } = {}) {
  const placed = []
  const next = new Map() // partition -> next expected offset
  for (let i = 0; i < recs.length; i += chunk) {
    const msgs = recs.slice(i, i + chunk)
    const meta = await producer.send({ topic, messages: msgs, compression, acks: -1, timeout: 30000 })
    const counts = new Map()
    for (const m of msgs) {
      const p = PLACED.get(m)
      check(p !== undefined, `the partitioner was not asked about a record of chunk ${i}`)
      placed.push(p)
      counts.set(p, (counts.get(p) || 0) + 1)
    }
    for (const r of meta) {
      check(r.errorCode === 0, `produce error ${r.errorCode} on partition ${r.partition}`)
      check(Number(r.baseOffset) === (next.get(r.partition) || 0),
        `partition ${r.partition}: base offset ${r.baseOffset}, want ${next.get(r.partition) || 0}`)
      next.set(r.partition, Number(r.baseOffset) + (counts.get(r.partition) || 0))
    }
    check(meta.length === counts.size, `send answered partitions ${meta.map(r => r.partition)}, sent to ${[...counts.keys()]}`)
  }
  return placed
}

// Reads every partition from offset 0 up to its high watermark (listed after producing).
async function consume (topic, partitions) {
  const cluster = new Cluster({
    logger: createLogger({ level: LOG_LEVEL, logCreator }),
    socketFactory: socketFactory(),
    brokers: [BOOTSTRAP],
    clientId: 'wharf-compat-reader',
    connectionTimeout: 10000,
    requestTimeout: 30000,
    enforceRequestTimeout: true,
    metadataMaxAge: 300000,
    allowAutoTopicCreation: false,
    isolationLevel: 1 // READ_COMMITTED, what a kafkajs consumer asks for by default
  })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    const [{ partitions: highs }] = await cluster.fetchTopicsOffset([
      { topic, fromBeginning: false, partitions: Array.from({ length: partitions }, (_, p) => ({ partition: p })) }])
    const out = []
    const deadline = deadlineFrom()
    for (const { partition, offset: high } of highs) {
      const leader = cluster.findTopicPartitionMetadata(topic).find(m => m.partitionId === partition).leader
      const broker = await cluster.findBroker({ nodeId: String(leader) })
      let pos = 0
      while (pos < Number(high)) {
        check(Date.now() < deadline, `partition ${partition}: read up to ${pos} of ${high} within ${WAIT_MS}ms`)
        const res = await broker.fetch({
          isolationLevel: 1, maxWaitTime: 100, minBytes: 1, maxBytes: 1048576,
          topics: [{ topic, partitions: [{ partition, fetchOffset: String(pos), maxBytes: 1048576 }] }]
        })
        const part = res.responses[0].partitions[0]
        check(part.errorCode === 0, `fetch ${topic}/${partition}@${pos}: error code ${part.errorCode}`)
        for (const m of part.messages) {
          if (Number(m.offset) < pos) continue // a batch may start before the fetch offset
          check(Number(m.offset) === pos, `partition ${partition}: offset ${m.offset} after ${pos - 1}`)
          out.push({ partition, offset: pos, key: m.key && m.key.toString(), value: m.value && m.value.toString(), timestamp: m.timestamp, headers: m.headers })
          pos += 1
        }
      }
      check(pos === Number(high), `partition ${partition}: read ${pos} records, high watermark ${high}`)
    }
    return out
  } finally {
    await cluster.disconnect()
  }
}

function checkRoundTrip (got, recs, placed, what) {
  const norm = h => Object.entries(h).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString() : String(v)])
  const line = (p, key, value, h) => JSON.stringify([p, key, value, norm(h)])
  const want = recs.map((r, i) => line(placed[i], r.key, r.value, r.headers)).sort()
  const have = got.map(r => line(r.partition, r.key, r.value, r.headers)).sort()
  check(have.length === want.length, `${what}: read ${have.length} records, sent ${want.length}`)
  const diff = have.findIndex((h, i) => h !== want[i])
  check(diff === -1, `${what}: the records read differ from those sent, e.g. read ${have[diff]} want ${want[diff]}`)
  for (const p of new Set(placed)) {
    const sent = recs.filter((_, i) => placed[i] === p).map(r => r.key)
    const read = got.filter(r => r.partition === p).map(r => r.key)
    check(JSON.stringify(read) === JSON.stringify(sent), `${what}: partition ${p} order differs from send order`)
  }
}

async function scenarioCodecs () {
  for (const [name, codec] of Object.entries(CODECS)) {
    const topic = `kjs-codec-${name}`
    await createTopics([[topic, 3]])
    const recs = records(N_RECORDS, name)
    const producer = newProducer()
    await producer.connect()
    let placed
    try { placed = await produce(producer, topic, recs, { compression: codec }) } finally { await producer.disconnect() }
    check(new Set(placed).size === 3, `${name}: the partitioner used only partitions ${[...new Set(placed)]}`)
    checkRoundTrip(await consume(topic, 3), recs, placed, name)
    console.log(`    ${name}: ${recs.length} records round-tripped`)
  }
}

async function scenarioIdempotent () {
  const topic = 'kjs-idempotent'
  await createTopics([[topic, 1]])
  const recs = records(5000, 'idem').map(r => ({ ...r, partition: 0 }))
  const producer = newProducer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let placed
  try { placed = await produce(producer, topic, recs, { chunk: 100 }) } finally { await producer.disconnect() }
  checkRoundTrip(await consume(topic, 1), recs, placed, 'idempotent')
}

async function scenarioAdmin () {
  const names = ['kjs-adm-a', 'kjs-adm-b', 'kjs-adm-c']
  await createTopics([['kjs-adm-a', 2], ['kjs-adm-b', 1]])
  await createTopics([['kjs-adm-c', 1]], [{ name: 'retention.ms', value: '3600000' }])
  await withAdmin(async admin => {
    const listed = await admin.listTopics()
    check(names.every(t => listed.includes(t)), `listTopics lacks some of ${names}: ${listed}`)
    const { topics } = await admin.fetchTopicMetadata({ topics: names })
    const counts = Object.fromEntries(topics.map(t => [t.name, t.partitions.length]))
    for (const [t, n] of [['kjs-adm-a', 2], ['kjs-adm-b', 1], ['kjs-adm-c', 1]]) {
      check(counts[t] === n, `${t}: ${counts[t]} partitions, want ${n}`)
    }
    const described = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: 'kjs-adm-c', configNames: ['retention.ms'] }], includeSynonyms: false
    })
    const res = described.resources[0]
    check(res.errorCode === 0, `describeConfigs error ${res.errorCode}: ${res.errorMessage}`)
    const entry = res.configEntries.find(e => e.configName === 'retention.ms')
    check(entry && entry.configValue === '3600000', `retention.ms entry ${jsonish(entry)}`)
    check(entry.isDefault === false, `retention.ms set at creation reported as a default: ${jsonish(entry)}`)
    await createTopics([['kjs-adm-a', 2]], [], false)
    await admin.deleteTopics({ topics: names, timeout: 30000 })
    const deadline = deadlineFrom()
    for (;;) {
      const left = (await admin.listTopics()).filter(t => names.includes(t))
      if (left.length === 0) break
      check(Date.now() < deadline, `still listed ${WAIT_MS}ms after delete: ${left}`)
      await new Promise(resolve => setTimeout(resolve, 100)) // polling interval, not synchronisation
    }
  })
}

async function scenarioOffsetsByTimestamp () {
  const topic = 'kjs-times'
  await createTopics([[topic, 1]])
  const base = (Math.floor(Date.now() / 1000) - 600) * 1000
  const producer = newProducer()
  await producer.connect()
  try {
    const recs = Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: `v${i}`, partition: 0, timestamp: String(base + i * 1000) }))
    await produce(producer, topic, recs, { chunk: 1 }) // one record per request
  } finally { await producer.disconnect() }
  const got = await consume(topic, 1)
  const stamps = got.map(r => Number(r.timestamp))
  check(jsonish(stamps) === jsonish(Array.from({ length: 10 }, (_, i) => base + i * 1000)), `timestamps read back ${stamps}`)
  await withAdmin(async admin => {
    // Past the last record, kafkajs answers the high watermark (10) in place of Kafka's -1.
    for (const [ts, want] of [[base + 3500, 4], [base, 0], [base + 9000, 9], [base + 60000, 10]]) {
      const found = await admin.fetchTopicOffsetsByTimestamp(topic, ts)
      check(found.length === 1 && Number(found[0].offset) === want,
        `fetchTopicOffsetsByTimestamp(base+${ts - base}) = ${jsonish(found)}, want offset ${want}`)
    }
    const [o] = await admin.fetchTopicOffsets(topic)
    check(Number(o.low) === 0 && Number(o.high) === 10, `fetchTopicOffsets ${jsonish(o)}, want low 0 high 10`)
  })
}

// A group consumer with its own client id: manual commits, short sessions so rebalances are quick.
function groupConsumer (groupId, clientId) {
  const k = new Kafka({ clientId, brokers: [BOOTSTRAP], logLevel: LOG_LEVEL, logCreator, requestTimeout: 30000 })
  return k.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, rebalanceTimeout: 20000, maxWaitTimeInMs: 100 })
}

// Awaits cond() until it holds; fails with what() after WAIT_MS.
async function until (cond, what) {
  const deadline = deadlineFrom()
  while (!(await cond())) {
    check(Date.now() < deadline, `after ${WAIT_MS}ms: ${what()}`)
    await new Promise(resolve => setTimeout(resolve, 50)) // polling interval, not synchronisation
  }
}

// A commit that races a rebalance may be refused with one of these (Kafka semantics, not a
// failure): the partition's next owner reads again from the last commit that got through.
const REBALANCE_ERRORS = ['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID']
const refusedForRebalance = e => REBALANCE_ERRORS.includes(e.type) || (e.originalError && REBALANCE_ERRORS.includes(e.originalError.type))

// Creates topic and sends n keyed records; returns the value sent per 'partition:offset' and the end offsets.
async function produceForGroup (topic, partitions, n, tag) {
  await createTopics([[topic, partitions]])
  const recs = records(n, tag)
  const producer = newProducer()
  await producer.connect()
  let placed
  try { placed = await produce(producer, topic, recs) } finally { await producer.disconnect() }
  check(new Set(placed).size === partitions, `the partitioner used only partitions ${[...new Set(placed)]}`)
  const sent = new Map()
  const ends = Array(partitions).fill(0)
  placed.forEach((p, i) => { sent.set(`${p}:${ends[p]}`, recs[i].value); ends[p] += 1 })
  return { sent, ends }
}

// The group's committed offset per partition (-1 for none).
async function groupOffsets (admin, groupId, topic) {
  const [res] = await admin.fetchOffsets({ groupId, topics: [topic] })
  return res.partitions.slice().sort((a, b) => a.partition - b.partition).map(p => Number(p.offset))
}

// Runs consumer c in its group until it has read every partition p in order from start[p] up
// to stop[p]; commits stop, calls whileActive() (still a member), then disconnects (leaves).
async function readGroup (c, topic, start, stop, sent, what, whileActive = async () => {}) {
  const next = start.slice()
  const errors = []
  c.on(c.events.CRASH, ({ payload }) => errors.push(`${what} crashed: ${payload.error && payload.error.stack}`))
  await c.connect()
  try {
    await c.subscribe({ topics: [topic], fromBeginning: true })
    await c.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const p = batch.partition
        for (const m of batch.messages) {
          const o = Number(m.offset)
          if (o >= stop[p] && next[p] >= stop[p]) continue // read ahead, past what this reader wants
          if (o !== next[p]) errors.push(`${what}: partition ${p}: read offset ${o}, want ${next[p]}`)
          else if (m.value.toString() !== sent.get(`${p}:${o}`)) errors.push(`${what}: partition ${p} offset ${o}: value differs from the one sent`)
          else next[p] += 1
        }
      }
    })
    await until(() => { check(errors.length === 0, errors.slice(0, 3).join('; ')); return next.every((n, p) => n >= stop[p]) },
      () => `${what}: read up to ${next} of ${stop}`)
    await c.commitOffsets(stop.map((offset, partition) => ({ topic, partition, offset: String(offset) })))
    await whileActive()
  } finally {
    await c.disconnect()
  }
}

async function scenarioGroupConsumeCommit () {
  const topic = `kjs-grp-commit-${RUN}`
  const groupId = topic
  const { sent, ends } = await produceForGroup(topic, 3, 3000, 'group')
  const seen = new Map()
  const shares = [[], []]
  const errors = []
  let refused = 0
  const consumers = [1, 2].map(i => groupConsumer(groupId, `kjs-member-${i}`))
  await withAdmin(async admin => {
    try {
      for (const [i, c] of consumers.entries()) {
        c.on(c.events.GROUP_JOIN, ({ payload }) => { shares[i] = (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b) })
        c.on(c.events.CRASH, ({ payload }) => errors.push(`member ${i + 1} crashed: ${payload.error && payload.error.stack}`))
        await c.connect()
        await c.subscribe({ topics: [topic], fromBeginning: true })
        await c.run({
          autoCommit: false,
          eachBatch: async ({ batch, commitOffsetsIfNecessary }) => {
            if (batch.messages.length === 0) return
            for (const m of batch.messages) seen.set(`${batch.partition}:${m.offset}`, m.value.toString())
            const offset = String(Number(batch.messages[batch.messages.length - 1].offset) + 1)
            try {
              await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition: batch.partition, offset }] }] })
            } catch (e) {
              if (refusedForRebalance(e)) refused += 1
              else errors.push(`member ${i + 1}: commit ${batch.partition}@${offset}: ${e.stack}`)
              throw e // kafkajs rejoins the group on a rebalance error
            }
          }
        })
      }
      let committed = null
      await until(async () => {
        check(errors.length === 0, errors.slice(0, 3).join('; '))
        const [a, b] = shares
        const split = a.length > 0 && b.length > 0 && jsonish([...a, ...b].sort((x, y) => x - y)) === '[0,1,2]'
        if (!split || seen.size < sent.size) return false
        committed = await groupOffsets(admin, groupId, topic)
        return jsonish(committed) === jsonish(ends)
      }, () => `read ${seen.size} of ${sent.size} distinct records; assignments ${jsonish(shares)} (want two disjoint ` +
        `non-empty shares of 0-2); committed ${jsonish(committed)}, end offsets ${jsonish(ends)}; ${refused} commits refused for a rebalance`)
    } finally {
      for (const c of consumers) await c.disconnect()
    }
  })
  check(errors.length === 0, errors.slice(0, 3).join('; '))
  const extra = [...seen.keys()].filter(k => !sent.has(k))
  check(extra.length === 0 && seen.size === sent.size, `read partition:offsets outside those sent: ${extra.slice(0, 5)}`)
  const bad = [...sent.keys()].filter(k => seen.get(k) !== sent.get(k))
  check(bad.length === 0, `values read differ from those sent at ${bad.slice(0, 5)}`)
}

async function scenarioGroupResume () {
  const topic = `kjs-grp-resume-${RUN}`
  const groupId = topic
  const { sent, ends } = await produceForGroup(topic, 2, 1000, 'resume')
  const half = ends.map(n => Math.floor(n / 2))
  await withAdmin(async admin => {
    const before = await groupOffsets(admin, groupId, topic)
    check(jsonish(before) === '[-1,-1]', `a new group has committed offsets ${before}`)
    await readGroup(groupConsumer(groupId, 'kjs-resume-1'), topic, [0, 0], half, sent, 'first consumer')
    const mid = await groupOffsets(admin, groupId, topic)
    check(jsonish(mid) === jsonish(half), `committed offsets ${mid} after the first consumer closed, want ${half}`)
    // The second consumer must start each partition exactly at the committed offset.
    await readGroup(groupConsumer(groupId, 'kjs-resume-2'), topic, half, ends, sent, 'second consumer')
    const after = await groupOffsets(admin, groupId, topic)
    check(jsonish(after) === jsonish(ends), `committed offsets ${after} after the second consumer, want ${ends}`)
  })
}

async function scenarioGroupAdmin () {
  const topic = `kjs-grp-admin-${RUN}`
  const groupId = topic
  const clientId = `kjs-admin-member-${RUN}`
  const { sent, ends } = await produceForGroup(topic, 2, 200, 'admin')
  await withAdmin(async admin => {
    await readGroup(groupConsumer(groupId, clientId), topic, [0, 0], ends, sent, 'consumer', async () => {
      const { groups: [d] } = await admin.describeGroups([groupId])
      check(d.errorCode === 0 && d.state === 'Stable', `describe with an active member: ${jsonish(d)}, want state Stable`)
      check(d.protocolType === 'consumer' && d.protocol === 'RoundRobinAssigner',
        `describe: protocol type/name ${d.protocolType}/${d.protocol}, want consumer/RoundRobinAssigner`)
      check(d.members.length === 1, `describe: ${d.members.length} members, want 1`)
      const m = d.members[0]
      check(m.clientId === clientId, `describe: member client id ${m.clientId}, want ${clientId}`)
      const { assignment } = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
      check(jsonish(assignment) === jsonish({ [topic]: [0, 1] }), `describe: member assignment ${jsonish(assignment)}, want ${topic} [0,1]`)
      const { topics } = AssignerProtocol.MemberMetadata.decode(m.memberMetadata)
      check(jsonish(topics) === jsonish([topic]), `describe: member subscription ${jsonish(topics)}`)
      const { groups } = await admin.listGroups()
      const mine = groups.filter(g => g.groupId === groupId)
      check(mine.length === 1 && mine[0].protocolType === 'consumer', `listGroups: ${jsonish(mine)}, want ${groupId} of type consumer`)
    })
    const { groups: [d] } = await admin.describeGroups([groupId])
    check(d.errorCode === 0 && d.state === 'Empty', `describe after the consumer left: state ${d.state}, want Empty`)
    check(d.members.length === 0, `describe after the consumer left: ${d.members.length} members`)
    const committed = await groupOffsets(admin, groupId, topic)
    check(jsonish(committed) === jsonish(ends), `fetchOffsets ${committed}, want end offsets ${ends}`)
    const deleted = await admin.deleteGroups([groupId])
    check(deleted.length === 1 && deleted[0].groupId === groupId && deleted[0].errorCode === 0, `deleteGroups: ${jsonish(deleted)}`)
    const { groups } = await admin.listGroups()
    check(!groups.some(g => g.groupId === groupId), `${groupId} still listed after deleteGroups`)
    const after = await groupOffsets(admin, groupId, topic)
    check(jsonish(after) === '[-1,-1]', `committed offsets after deleteGroups: ${after}, want none (-1)`)
    const again = await admin.deleteGroups([groupId]).then(res => ({ res }), e => e)
    check(again.name === 'KafkaJSDeleteGroupsError' && again.groups.length === 1 && again.groups[0].error.type === 'GROUP_ID_NOT_FOUND',
      `deleting a deleted group: ${again.stack || jsonish(again)}, want KafkaJSDeleteGroupsError GROUP_ID_NOT_FOUND`)
  })
}

const SCENARIOS = [
  ['produce+consume 10k keyed records with headers, every codec', scenarioCodecs],
  ['idempotent producer', scenarioIdempotent],
  ['admin create/list/describe/delete topics', scenarioAdmin],
  ['fetchTopicOffsetsByTimestamp (ListOffsets by timestamp)', scenarioOffsetsByTimestamp],
  ['group_consume_commit: two subscribers share 3 partitions, commit per batch', scenarioGroupConsumeCommit],
  ['group_resume: a new member resumes from the group\'s committed offsets', scenarioGroupResume],
  ['group_admin: describe/list groups, fetch group offsets, delete group', scenarioGroupAdmin]
]

async function main () {
  // A bound on the whole run, even if a client call never settles.
  const limit = Number(process.env.WHARF_TEST_TIMEOUT || 540)
  setTimeout(() => { console.log(`FAIL kafkajs: the whole run took over ${limit}s; stopped`); process.exit(1) }, limit * 1000).unref()
  console.log(`kafkajs ${require('kafkajs/package.json').version} against ${BOOTSTRAP} (codecs: ${Object.keys(CODECS)})`)
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
  console.log(`kafkajs: ${SCENARIOS.length - failed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}

main()
