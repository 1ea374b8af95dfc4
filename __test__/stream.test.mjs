// DataChannelStream: a Duplex over a channel of either API, with backpressure both ways.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import vm from 'node:vm'
import { PionIpc, DataChannelStream, createDataChannelStream } from '../index.mjs'
import * as polyfill from 'pion-node-rs/polyfill'
import { connectPair } from './helpers/webrtc.mjs'
import { withTimeout } from './helpers/util.mjs'

const MiB = 1024 * 1024

// A full collection before each memory sample, so that garbage not yet collected does not
// count as held (this file's process only).
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

/** Two connected SDK peers on a sidecar of their own: fn({ dcA, dcB }); then all closed. */
async function withPair(label, fn) {
  const ipc = new PionIpc({ logger: () => {} })
  await ipc.start()
  try {
    const { a, b, dcA, dcB } = await connectPair(ipc, { label })
    try {
      return await fn({ dcA, dcB })
    } finally {
      a.close()
      b.close()
    }
  } finally {
    await ipc.stop()
  }
}

/** `total` bytes of a deterministic pattern, in chunks of `size`. */
function* pattern(total, size) {
  let n = 0
  for (let sent = 0; sent < total; sent += size) {
    const chunk = Buffer.allocUnsafe(Math.min(size, total - sent))
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE(n++ >>> 0, i)
    yield chunk
  }
}

test('200 MB through a stream to a slow reader: every byte arrives in order and memory stays bounded', { timeout: 240_000 }, async () => {
  await withPair('bulk', async ({ dcA, dcB }) => {
    const TOTAL = 200 * MiB
    const sender = new DataChannelStream(dcA)
    const receiver = createDataChannelStream(dcB)
    const sentHash = createHash('sha256')
    const gotHash = createHash('sha256')
    gc()
    const base = process.memoryUsage().rss
    let peak = base
    let readBuffered = 0
    const sampler = setInterval(() => {
      gc()
      peak = Math.max(peak, process.memoryUsage().rss)
      readBuffered = Math.max(readBuffered, receiver.readableLength)
    }, 250)
    let received = 0
    let pausedSeen = false
    // About 10 MB/s: much slower than the sender can go.
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk, _enc, done) {
        gotHash.update(chunk)
        received += chunk.length
        if (dcB[Symbol.for('pion-node-rs.native')].paused) pausedSeen = true
        if (received % (256 * 1024) < chunk.length) setTimeout(done, 25)
        else done()
      },
    })
    const source = Readable.from(
      (function* () {
        for (const chunk of pattern(TOTAL, 256 * 1024)) {
          sentHash.update(chunk)
          yield chunk
        }
      })(),
    )
    try {
      await withTimeout(Promise.all([pipeline(source, sender), pipeline(receiver, slow)]), 200_000, '200 MB through the stream')
    } finally {
      clearInterval(sampler)
    }
    assert.equal(received, TOTAL)
    assert.equal(gotHash.digest('hex'), sentHash.digest('hex'))
    assert.ok(pausedSeen, 'the slow reader paused the channel')
    const grew = (peak - base) / MiB
    console.log(`# RSS grew at most ${grew.toFixed(1)} MiB (base ${(base / MiB).toFixed(1)} MiB) for 200 MiB moved`)
    // Without the pause the reader's buffer alone grows past 90 MiB here, and RSS by 150.
    assert.ok(grew < 100, `RSS grew ${grew.toFixed(1)} MiB while moving 200 MiB to a slow reader`)
    assert.ok(readBuffered <= MiB, `the readable side buffered ${readBuffered} bytes`)
    assert.equal(dcA.readyState, 'closed', "the sender's end() closed the channel")
  })
})

test('objectMode maps text to text and binary to binary, one message per chunk; end() closes and ends the other side', { timeout: 30_000 }, async () => {
  await withPair('objects', async ({ dcA, dcB }) => {
    const left = new DataChannelStream(dcA, { objectMode: true })
    const right = new DataChannelStream(dcB, { objectMode: true })
    const seen = []
    dcB.on('message', ({ data }) => seen.push(typeof data === 'string' ? `text:${data}` : `binary:${data.length}`))
    left.write('hello')
    left.write(Buffer.from([1, 2, 3]))
    left.write(new Uint8Array(5))
    left.end('bye')
    const chunks = []
    for await (const chunk of right) chunks.push(chunk)
    assert.deepEqual(seen, ['text:hello', 'binary:3', 'binary:5', 'text:bye'])
    assert.deepEqual(chunks.map((c) => (typeof c === 'string' ? c : [...c])), ['hello', [1, 2, 3], [0, 0, 0, 0, 0], 'bye'])
    assert.equal(dcB.readyState, 'closed')
    left.resume() // its readable side ends with the channel's close; read, the stream closes
    await withTimeout(new Promise((r) => (left.destroyed ? r() : left.once('close', r))), 10_000, 'left stream closed')
  })
})

test('byte mode: a write larger than a message is split (text between characters); bad chunks and a closed channel are errors', { timeout: 30_000 }, async () => {
  await withPair('bytes', async ({ dcA, dcB }) => {
    const left = new DataChannelStream(dcA)
    const sizes = []
    const texts = []
    dcB.on('message', ({ data }) => (typeof data === 'string' ? texts.push(data) : sizes.push(data.length)))
    const right = new DataChannelStream(dcB)
    const big = Buffer.alloc(150_000, 7)
    const text = 'é'.repeat(40_000) // 80,000 UTF-8 bytes
    left.write(big)
    left.end(text)
    let total = 0
    for await (const chunk of right) total += chunk.length
    assert.deepEqual(sizes, [65535, 65535, 150_000 - 2 * 65535])
    assert.equal(texts.join(''), text, 'text arrives as text, cut between characters')
    assert.ok(texts.every((t) => Buffer.byteLength(t) <= 65535))
    assert.equal(total, big.length + Buffer.byteLength(text))
    assert.throws(() => new DataChannelStream({}), TypeError)
    assert.throws(() => new DataChannelStream(dcA, { bufferedAmountHighWaterMark: -1 }), RangeError)
    const objects = new DataChannelStream(dcA, { objectMode: true })
    objects.on('error', () => {})
    await assert.rejects(
      new Promise((resolve, reject) => objects.write(42, (err) => (err ? reject(err) : resolve()))),
      TypeError,
    )
    const late = new DataChannelStream(dcA)
    const failed = new Promise((resolve) => late.once('error', resolve))
    await assert.rejects(
      new Promise((resolve, reject) => late.write('x', (err) => (err ? reject(err) : resolve()))),
      /cannot write, the channel is 'closed'/,
    )
    assert.match((await failed).message, /'closed'/, "the stream's error event says it too")
  })
})

test('the standard API: a stream over each polyfill channel, data both ways, destroy() closes the channel', { timeout: 30_000 }, async () => {
  const a = new polyfill.RTCPeerConnection()
  const b = new polyfill.RTCPeerConnection()
  try {
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate).catch(() => {})
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate).catch(() => {})
    const dcA = a.createDataChannel('duplex')
    const remote = new Promise((resolve) => (b.ondatachannel = (e) => resolve(e.channel)))
    await a.setLocalDescription()
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription()
    await a.setRemoteDescription(b.localDescription)
    const dcB = await withTimeout(remote, 15_000, 'datachannel on B')
    assert.equal(polyfill.DataChannelStream, DataChannelStream)
    // Written before the channel is open: the write waits for it.
    const left = polyfill.createDataChannelStream(dcA)
    left.write('ping')
    const right = polyfill.createDataChannelStream(dcB, { encoding: 'utf8' })
    const first = await withTimeout(new Promise((r) => right.once('data', r)), 15_000, 'ping')
    assert.equal(first, 'ping')
    right.write(Buffer.from('pong'))
    const back = await withTimeout(new Promise((r) => left.once('data', r)), 15_000, 'pong')
    assert.equal(back.toString(), 'pong')
    const closed = new Promise((r) => dcB.addEventListener('close', r, { once: true }))
    left.destroy()
    await withTimeout(closed, 15_000, 'the remote channel closed')
    assert.notEqual(dcA.readyState, 'open')
    await withTimeout(new Promise((r) => (right.destroyed ? r() : right.once('close', r))), 15_000, 'the remote stream closed')
    await sleep(0)
  } finally {
    a.close()
    b.close()
  }
})
