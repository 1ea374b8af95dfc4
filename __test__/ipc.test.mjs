// PionIpc against the real pion-ipc sidecar: requests, events from real WebRTC traffic,
// batching, and the process lifecycle.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { decode } from '@msgpack/msgpack'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esm from '../index.mjs'
import { withTimeout, until, sleep, waitGone } from './helpers/util.mjs'

const require = createRequire(import.meta.url)
const cjs = require('../index.js')
const { PionIpc } = esm

const quiet = { logger: () => {} }

describe('module exports', () => {
  test('ESM and CommonJS expose the same PionIpc, an EventEmitter', () => {
    assert.equal(esm.PionIpc, cjs.PionIpc)
    const ipc = new PionIpc(quiet)
    assert.ok(ipc instanceof EventEmitter)
    for (const m of ['on', 'once', 'off', 'addListener', 'removeListener', 'removeAllListeners', 'listenerCount', 'emit']) {
      assert.equal(typeof ipc[m], 'function', m)
    }
    assert.equal(ipc.started, false)
    assert.equal(ipc.pid, null)
  })
})

describe('PionIpc with the real sidecar', () => {
  const ipc = new PionIpc(quiet)
  after(() => ipc.stop())

  test('start() pings and resolves; started is true', async () => {
    await withTimeout(ipc.start(), 5000, 'start')
    assert.equal(ipc.started, true)
    assert.ok(ipc.pid > 0)
    await assert.rejects(ipc.start(), { message: 'already started' })
  })

  test('request ids increase and responses carry the decoded header', async () => {
    const a = await ipc.request('ping')
    const b = await ipc.request('ping')
    assert.equal(a.header.type, 'res')
    assert.equal(a.header.ok, true)
    assert.equal(b.header.id, a.header.id + 1)
    assert.ok(Buffer.isBuffer(a.payload))
    assert.equal(a.payload.length, 0)
  })

  test('pipelined requests are all answered, matched by id', async () => {
    const answers = await withTimeout(
      Promise.all(Array.from({ length: 2000 }, () => ipc.request('ping'))),
      10000,
      '2000 pings'
    )
    const ids = new Set(answers.map((r) => r.header.id))
    assert.equal(ids.size, 2000)
  })

  test('an ok:false response rejects with the sidecar error text and is logged', async () => {
    const lines = []
    const logged = new PionIpc({ logger: (l) => lines.push(l) })
    await logged.start()
    try {
      await assert.rejects(logged.request('pc.close', { pcId: 'ghost' }), {
        message: 'peer "ghost" not found',
      })
      await until(() => lines.some((l) => /^\[pion-ipc\] request error id=\d+ method=pc.close err=peer "ghost" not found$/.test(l)), 2000, 'log line')
      assert.ok(lines.every((l) => l.startsWith('[pion-ipc] ')))
      assert.ok(lines.some((l) => l.startsWith('[pion-ipc] [stderr] ')), 'stderr lines reach the logger')
    } finally {
      await logged.stop()
    }
  })

  test('object payloads are msgpack-encoded; settings errors come back as rejections', async () => {
    await assert.rejects(
      ipc.request('pc.create', {}, { pcId: 'bad-settings', iceServers: [], settings: { sctpRtoMax: 400000 } }),
      /exceeds max 300000 ms/
    )
    await ipc.request('pc.create', {}, { pcId: 'p1', iceServers: [{ urls: ['stun:127.0.0.1:3478'] }] })
    const offer = await ipc.request('pc.createOffer', { pcId: 'p1' })
    // no channel, no media: still an offer
    assert.match(decode(offer.payload).sdp, /^v=0/)
    await ipc.request('pc.close', { pcId: 'p1' })
  })

  test('sidecar events are re-emitted under their own names with pcId, dcLabel, isBinary, payload', async () => {
    const events = []
    const record = (name) => (e) => events.push({ name, ...e })
    const names = ['pc.icecandidate', 'pc.statechange', 'pc.datachannel', 'pc.signalingstatechange', 'dc.open', 'dc.message']
    const listeners = names.map((n) => [n, record(n)])
    for (const [n, l] of listeners) ipc.on(n, l)
    // trickle candidates between the two connections, raw msgpack as it came, holding
    // them back until the receiving side has its remote description
    const early = { A: [], B: [] }
    const add = (to, payload) => ipc.request('pc.addIceCandidate', { pcId: to }, payload).catch(() => {})
    const trickle = (e) => {
      const to = e.pcId === 'A' ? 'B' : 'A'
      if (early[to]) early[to].push(e.payload)
      else add(to, e.payload)
    }
    const release = (to) => {
      for (const payload of early[to]) add(to, payload)
      early[to] = null
    }
    ipc.on('pc.icecandidate', trickle)
    try {
      await ipc.request('pc.create', {}, { pcId: 'A', iceServers: [] })
      await ipc.request('pc.create', {}, { pcId: 'B', iceServers: [] })
      await ipc.request('dc.create', { pcId: 'A' }, { label: 'chat', ordered: true })
      const { sdp: offer } = decode((await ipc.request('pc.createOffer', { pcId: 'A' })).payload)
      await ipc.request('pc.setLocalDescription', { pcId: 'A' }, { type: 'offer', sdp: offer })
      await ipc.request('pc.setRemoteDescription', { pcId: 'B' }, { type: 'offer', sdp: offer })
      release('B')
      const { sdp: answer } = decode((await ipc.request('pc.createAnswer', { pcId: 'B' })).payload)
      await ipc.request('pc.setLocalDescription', { pcId: 'B' }, { type: 'answer', sdp: answer })
      await ipc.request('pc.setRemoteDescription', { pcId: 'A' }, { type: 'answer', sdp: answer })
      release('A')
      await until(() => events.some((e) => e.name === 'dc.open' && e.pcId === 'A'), 15000, 'dc.open on A')
      await until(() => events.some((e) => e.name === 'pc.datachannel' && e.pcId === 'B'), 15000, 'datachannel on B')
      await ipc.request('dc.send', { pcId: 'A', dcLabel: 'chat' }, Buffer.from('hello'))
      await ipc.request('dc.send', { pcId: 'A', dcLabel: 'chat', isBinary: true }, Buffer.from([0, 1, 2]))
      const messages = await until(() => {
        const m = events.filter((e) => e.name === 'dc.message' && e.pcId === 'B')
        return m.length >= 2 && m
      }, 10000, 'two messages on B')
      assert.equal(messages[0].dcLabel, 'chat')
      assert.equal(messages[0].isBinary, false)
      assert.equal(messages[0].payload.toString(), 'hello')
      assert.equal(messages[1].isBinary, true)
      assert.deepEqual([...messages[1].payload], [0, 1, 2])
      const candidate = events.find((e) => e.name === 'pc.icecandidate')
      assert.equal(typeof decode(candidate.payload).candidate, 'string')
      const announce = events.find((e) => e.name === 'pc.datachannel')
      assert.equal(announce.dcLabel, 'chat')
    } finally {
      for (const [n, l] of listeners) ipc.off(n, l)
      ipc.off('pc.icecandidate', trickle)
      await ipc.request('pc.close', { pcId: 'A' }).catch(() => {})
      await ipc.request('pc.close', { pcId: 'B' }).catch(() => {})
    }
  })

  test('request payload over 16 MiB is refused before anything is sent', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024)
    await assert.rejects(ipc.request('dc.send', { pcId: 'x', dcLabel: 'y' }, big), RangeError)
    // the sidecar is still fine
    await ipc.request('ping')
  })

  test('stop() resolves, started becomes false, the process is gone, no exit event', async () => {
    const pid = ipc.pid
    let exits = 0
    ipc.on('exit', () => exits++)
    await withTimeout(ipc.stop(), 7000, 'stop')
    assert.equal(ipc.started, false)
    await assert.rejects(ipc.request('ping'), { message: 'not started' })
    await sleep(50)
    assert.equal(exits, 0)
    assert.ok(await waitGone(pid, 2000), 'sidecar process gone')
    await ipc.stop()
  })
})

describe('batched delivery', () => {
  test('a burst of frames reaches JavaScript in a few wake-ups, not one per frame', async () => {
    // the fake sidecar writes all 2000 event frames in one write
    const dir = mkdtempSync(join(tmpdir(), 'pnr-batch-'))
    const bin = join(dir, 'fake')
    const fake = fileURLToPath(new URL('./fixtures/fake-sidecar.mjs', import.meta.url))
    writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" "${fake}" echo\n`, { mode: 0o755 })
    const ipc = new PionIpc({ ...quiet, binPath: bin })
    await ipc.start()
    try {
      let turn = 0
      let ticking = true
      const tick = () => {
        if (!ticking) return
        turn++
        setImmediate(tick)
      }
      setImmediate(tick)
      const turns = new Set()
      const seen = []
      ipc.on('pc.test', (e) => {
        turns.add(turn)
        seen.push(e.payload.readUInt32LE(0))
      })
      await ipc.request('emit', {}, { count: 2000 })
      await until(() => seen.length === 2000, 5000, '2000 events')
      ticking = false
      assert.deepEqual(seen, Array.from({ length: 2000 }, (_, i) => i))
      assert.ok(turns.size <= 10, `2000 frames were delivered over ${turns.size} event loop turns`)
    } finally {
      await ipc.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
