// PionIpc against the fault-injection fake sidecar (__test__/fixtures/fake-sidecar.mjs).
// Every wait is bounded and every instance is stopped in `finally`.

import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import util from 'node:util'
import { fileURLToPath } from 'node:url'
import { PionIpc } from '../index.mjs'
import { threads } from './helpers/util.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const FAKE = path.join(here, 'fixtures', 'fake-sidecar.mjs')

let tmp
const bins = {}

function writeScript(file, body) {
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`)
  fs.chmodSync(file, 0o755)
  return file
}

function fakeCmd(mode) {
  return `exec "${process.execPath}" "${FAKE}" ${mode}`
}

function bin(mode) {
  if (!bins[mode]) bins[mode] = writeScript(path.join(tmp, `fake-${mode}.sh`), fakeCmd(mode))
  return bins[mode]
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pion-faults-'))
})

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function withTimeout(promise, ms, what = 'operation') {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

// Like events.once, but without touching the 'error' listener count, and bounded.
function onceEvent(emitter, name, ms = 3000) {
  let handler
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args)
    emitter.once(name, handler)
  })
  return withTimeout(p, ms, `'${name}' event`).finally(() => emitter.off(name, handler))
}

async function waitFor(pred, ms = 3000, what = 'condition') {
  const deadline = Date.now() + ms
  for (;;) {
    if (pred()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

// Settles a promise into { ok, value | error } without ever rejecting.
function settle(p) {
  return p.then(
    (value) => ({ ok: true, value }),
    (error) => ({ ok: false, error }),
  )
}

function isAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    if (e.code === 'ESRCH') return false
    throw e
  }
}

function busyWait(ms) {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // spin
  }
}

function collector() {
  const lines = []
  const logger = (line) => {
    lines.push(line)
  }
  return { lines, logger }
}

function pidFromLines(lines, mode) {
  const re = new RegExp(`^\\[pion-ipc\\] \\[stderr\\] fake-sidecar ${mode} pid=(\\d+)$`)
  for (const l of lines) {
    const m = re.exec(l)
    if (m) return Number(m[1])
  }
  return null
}

// Creates an instance, runs `fn`, always stops it (bounded).
async function withIpc(options, fn) {
  const ipc = new PionIpc(options)
  try {
    return await fn(ipc)
  } finally {
    await withTimeout(ipc.stop(1000), 5000, 'stop() in finally')
  }
}

const PING_RES = (id) => ({ type: 'res', id, ok: true })

// ---------------------------------------------------------------------------

describe('PionIpc basics (echo)', () => {
  test('start(), started, ping response shape, ids from 2 upward', async () => {
    const { logger } = collector()
    await withIpc({ binPath: bin('echo'), logger }, async (ipc) => {
      assert.equal(ipc.started, false)
      await withTimeout(ipc.start(), 5000, 'start()')
      assert.equal(ipc.started, true)
      assert.equal(typeof ipc.pid, 'number')
      const r1 = await withTimeout(ipc.request('ping'), 3000, 'ping')
      assert.deepEqual(r1.header, PING_RES(2))
      assert.ok(Buffer.isBuffer(r1.payload))
      assert.equal(r1.payload.length, 0)
      const r2 = await withTimeout(ipc.request('ping'), 3000, 'ping')
      assert.deepEqual(r2.header, PING_RES(3))
      const many = await withTimeout(
        Promise.all([1, 2, 3, 4, 5].map(() => ipc.request('ping'))),
        3000,
        'pings',
      )
      assert.deepEqual(
        many.map((r) => r.header.id),
        [4, 5, 6, 7, 8],
      )
    })
  })

  test('request payloads: Buffer/Uint8Array raw, object msgpack, absent empty; opts accepted', async () => {
    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')

      const raw = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80])
      const r1 = await withTimeout(ipc.request('echo', {}, raw), 3000, 'echo buffer')
      assert.ok(Buffer.isBuffer(r1.payload))
      assert.deepEqual(r1.payload, raw)

      const u8 = new Uint8Array([9, 8, 7, 6])
      const r2 = await withTimeout(ipc.request('echo', undefined, u8), 3000, 'echo u8')
      assert.deepEqual(r2.payload, Buffer.from([9, 8, 7, 6]))

      // A view into a bigger buffer: exactly the view's bytes.
      const backing = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])
      const view = backing.subarray(2, 5)
      const r3 = await withTimeout(ipc.request('echo', {}, view), 3000, 'echo view')
      assert.deepEqual(r3.payload, Buffer.from([3, 4, 5]))

      const r4 = await withTimeout(ipc.request('echo', {}, { a: 1, b: 'x' }), 3000, 'echo object')
      assert.deepEqual(r4.payload, Buffer.from([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0xa1, 0x78]))

      const r5 = await withTimeout(ipc.request('echo'), 3000, 'echo empty')
      assert.ok(Buffer.isBuffer(r5.payload))
      assert.equal(r5.payload.length, 0)

      const r6 = await withTimeout(ipc.request('echo', {}, null), 3000, 'echo null')
      assert.equal(r6.payload.length, 0)

      const r7 = await withTimeout(
        ipc.request('echo', { pcId: 'pc-1', dcLabel: 'chan', isBinary: true }, Buffer.from('hi')),
        3000,
        'echo with opts',
      )
      assert.equal(r7.header.ok, true)
      assert.deepEqual(r7.payload, Buffer.from('hi'))

      const r8 = await withTimeout(
        ipc.request('echo', { pcId: null, dcLabel: null, isBinary: false }),
        3000,
        'echo with null opts',
      )
      assert.equal(r8.header.ok, true)
    })
  })

  test("'fail' rejects with 'boom' and logs the request error", async () => {
    const { lines, logger } = collector()
    await withIpc({ binPath: bin('echo'), logger }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      await withTimeout(
        assert.rejects(ipc.request('fail'), (err) => {
          assert.ok(err instanceof Error)
          assert.equal(err.message, 'boom')
          return true
        }),
        3000,
        'fail',
      )
      await waitFor(
        () => lines.includes('[pion-ipc] request error id=2 method=fail err=boom'),
        2000,
        'request error log line',
      )
      // still usable
      const r = await withTimeout(ipc.request('ping'), 3000, 'ping after fail')
      assert.equal(r.header.id, 3)
    })
  })

  test("'orphan' logs the unknown id and the real request still resolves", async () => {
    const { lines, logger } = collector()
    await withIpc({ binPath: bin('echo'), logger }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const r = await withTimeout(ipc.request('orphan'), 3000, 'orphan')
      assert.deepEqual(r.header, PING_RES(2))
      await waitFor(
        () => lines.includes(`[pion-ipc] orphan response id=${2 + 1000000}`),
        2000,
        'orphan log line',
      )
    })
  })
})

describe('logger', () => {
  test("every line starts with '[pion-ipc] '; stderr lines are '[pion-ipc] [stderr] <line>'", async () => {
    const { lines, logger } = collector()
    await withIpc({ binPath: bin('echo'), logger }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const pid = ipc.pid
      await waitFor(
        () => lines.includes(`[pion-ipc] [stderr] fake-sidecar echo pid=${pid}`),
        2000,
        'stderr start line',
      )
      await withTimeout(ipc.request('stderr', {}, { lines: 5 }), 3000, 'stderr request')
      await withTimeout(assert.rejects(ipc.request('fail')), 3000, 'fail')
      await withTimeout(ipc.request('orphan'), 3000, 'orphan')
      await waitFor(
        () => lines.filter((l) => l.startsWith('[pion-ipc] [stderr] stderr line ')).length === 5,
        2000,
        '5 stderr lines',
      )
      const first = lines.find((l) => l.startsWith('[pion-ipc] [stderr] stderr line 0 '))
      assert.equal(first, '[pion-ipc] [stderr] stderr line 0 ' + 'x'.repeat(99 - 'stderr line 0 '.length))
      await waitFor(() => lines.some((l) => l.includes('orphan response')), 2000, 'orphan line')
      for (const l of lines) {
        assert.equal(typeof l, 'string')
        assert.ok(l.startsWith('[pion-ipc] '), `line without prefix: ${JSON.stringify(l)}`)
      }
    })
  })

  test('a logger that throws breaks nothing', async () => {
    let calls = 0
    const logger = () => {
      calls++
      throw new Error('logger exploded')
    }
    let uncaught = null
    const onUncaught = (err) => {
      uncaught = err
    }
    process.on('uncaughtException', onUncaught)
    try {
      await withIpc({ binPath: bin('echo'), logger }, async (ipc) => {
        await withTimeout(ipc.start(), 5000, 'start()')
        await waitFor(() => calls >= 1, 2000, 'logger call')
        await withTimeout(ipc.request('stderr', {}, { lines: 20 }), 3000, 'stderr request')
        await withTimeout(assert.rejects(ipc.request('fail'), { message: 'boom' }), 3000, 'fail')
        await withTimeout(ipc.request('orphan'), 3000, 'orphan')
        const events = []
        ipc.on('pc.test', (e) => events.push(e))
        await withTimeout(ipc.request('emit', {}, { count: 3 }), 3000, 'emit')
        await waitFor(() => events.length === 3, 2000, '3 events')
        const r = await withTimeout(ipc.request('ping'), 3000, 'ping')
        assert.equal(r.header.ok, true)
        assert.ok(calls >= 20, `logger called ${calls} times`)
      })
      await sleep(50)
      assert.equal(uncaught, null)
    } finally {
      process.off('uncaughtException', onUncaught)
    }
  })

  test('no logger: lines go to console.warn', async () => {
    const original = console.warn
    const warned = []
    console.warn = (...args) => {
      warned.push(args)
    }
    try {
      await withIpc({ binPath: bin('echo') }, async (ipc) => {
        await withTimeout(ipc.start(), 5000, 'start()')
        const pid = ipc.pid
        await waitFor(
          () => warned.some((a) => a[0] === `[pion-ipc] [stderr] fake-sidecar echo pid=${pid}`),
          2000,
          'console.warn stderr line',
        )
        await withTimeout(assert.rejects(ipc.request('fail')), 3000, 'fail')
        await waitFor(
          () => warned.some((a) => a[0] === '[pion-ipc] request error id=2 method=fail err=boom'),
          2000,
          'console.warn request error line',
        )
      })
    } finally {
      console.warn = original
    }
    assert.equal(console.warn, original)
  })
})

describe('events', () => {
  test("'emit' with count 500 delivers 500 pc.test events in order", async () => {
    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const events = []
      ipc.on('pc.test', (e) => events.push(e))
      await withTimeout(
        ipc.request('emit', {}, { count: 500, pcId: 'pc-7', dcLabel: 'lbl' }),
        3000,
        'emit',
      )
      await waitFor(() => events.length >= 500, 3000, '500 events')
      await sleep(50)
      assert.equal(events.length, 500)
      events.forEach((e, i) => {
        assert.deepEqual(Object.keys(e).sort(), ['dcLabel', 'isBinary', 'payload', 'pcId'])
        assert.equal(e.pcId, 'pc-7')
        assert.equal(e.dcLabel, 'lbl')
        assert.equal(e.isBinary, true)
        assert.ok(Buffer.isBuffer(e.payload))
        assert.equal(e.payload.length, 4)
        assert.equal(e.payload.readUInt32LE(0), i)
      })
    })
  })
})

// How the sidecar's stdout is read (Unix): on the JavaScript thread's loop, with a watchdog
// thread reading in its place while JavaScript holds the loop up (the default), or by a
// reader thread of its own (PION_NODE_RS_READER=thread). Both must hold what follows.
function withReaderMode(mode) {
  let saved
  before(() => {
    saved = process.env.PION_NODE_RS_READER
    if (mode === 'thread') process.env.PION_NODE_RS_READER = 'thread'
    else delete process.env.PION_NODE_RS_READER
  })
  after(() => {
    if (saved === undefined) delete process.env.PION_NODE_RS_READER
    else process.env.PION_NODE_RS_READER = saved
  })
}

describe('stdout reader mode', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  for (const mode of ['loop', 'thread']) {
    describe(mode, () => {
      withReaderMode(mode)
      test(`the ${mode} reader delivers 2,000 events in order and answers requests`, async () => {
        const lines = []
        await withIpc({ binPath: bin('echo'), logger: (line) => lines.push(line) }, async (ipc) => {
          const earlier = threads()
          await withTimeout(ipc.start(), 5000, 'start()')
          // the threads this start() made (an earlier instance's may still be ending)
          const names = [...threads()].filter(([tid]) => !earlier.has(tid)).map(([, name]) => name)
          // comm is cut at 15 characters. A build with PION_NODE_RS_PORTABLE=1 (the Windows
          // I/O path, see build.rs) has neither: a tokio task reads, whatever the mode says.
          const portable = process.env.PION_NODE_RS_PORTABLE === '1'
          assert.equal(names.includes('pion-ipc-watchd'), !portable && mode === 'loop', `threads: ${names}`)
          assert.equal(names.includes('pion-ipc-reader'), !portable && mode === 'thread', `threads: ${names}`)
          let received = 0
          let outOfOrder = 0
          ipc.on('pc.test', ({ payload }) => {
            if (payload.readUInt32LE(0) !== received) outOfOrder++
            received++
          })
          await withTimeout(ipc.request('emit', {}, { count: 2000 }), 5000, 'emit')
          await waitFor(() => received === 2000, 10000, '2000 events')
          assert.equal(outOfOrder, 0)
          const r = await withTimeout(ipc.request('ping'), 2000, 'ping')
          assert.equal(r.header.ok, true)
        })
        assert.deepEqual(
          lines.filter((l) => l.includes('cannot watch')),
          [],
          'the loop reader was installed',
        )
      })
    })
  }
})

for (const mode of ['loop', 'thread']) describe(`backpressure from a slow consumer (${mode} reader)`, () => {
  withReaderMode(mode)
  const MiB = 1 << 20
  const FRAME = 16 * 1024
  const COUNT = 4096 // 64 MiB in 'pc.flood' events

  // A PionIpc on the echo fake whose reader pauses past `limit` undelivered bytes (the
  // variable is read when the instance is made).
  function ipcWithBound(limit) {
    const saved = process.env.PION_NODE_RS_BACKLOG_BYTES
    process.env.PION_NODE_RS_BACKLOG_BYTES = String(limit)
    try {
      return new PionIpc({ binPath: bin('echo'), logger: () => {} })
    } finally {
      if (saved === undefined) delete process.env.PION_NODE_RS_BACKLOG_BYTES
      else process.env.PION_NODE_RS_BACKLOG_BYTES = saved
    }
  }

  // A file the fake 'flood' writes its progress to, and a reader of it.
  function progressFile(name) {
    const file = path.join(tmp, name)
    fs.writeFileSync(file, '0')
    return { file, written: () => Number(fs.readFileSync(file, 'utf8')) || 0 }
  }

  // The first event's listener blocks the JavaScript thread until the fake has written at
  // least `until` bytes and then no more for 300 ms (or `maxMs` pass), and records what it
  // had written by then. Everything must still arrive afterwards, in order.
  async function flood(limit, until, maxMs) {
    const ipc = ipcWithBound(limit)
    const { file: progress, written } = progressFile(`flood-${limit}`)
    try {
      await withTimeout(ipc.start(), 5000, 'start()')
      let received = 0
      let outOfOrder = 0
      let writtenWhileBlocked = null
      ipc.on('pc.flood', ({ payload }) => {
        if (payload.readUInt32LE(0) !== received) outOfOrder++
        received++
        if (writtenWhileBlocked !== null) return
        const end = performance.now() + maxMs
        let last = written()
        let lastChange = performance.now()
        while (performance.now() < end) {
          busyWait(20)
          const w = written()
          if (w !== last) {
            last = w
            lastChange = performance.now()
          } else if (w >= until && performance.now() - lastChange > 300) break
        }
        writtenWhileBlocked = written()
      })
      await withTimeout(ipc.request('flood', {}, { count: COUNT, size: FRAME, progress }), 5000, 'flood')
      await waitFor(() => received === COUNT, 30000, `${COUNT} events`)
      assert.equal(outOfOrder, 0)
      return writtenWhileBlocked
    } finally {
      await withTimeout(ipc.stop(1000), 5000, 'stop()')
    }
  }

  test('the reader stops once undelivered frames pass the bound, and loses nothing', async () => {
    const blocked = await flood(MiB, MiB, 5000)
    // the bound, one read chunk, one frame, the pipe and the fake's own frame in hand
    assert.ok(blocked >= MiB, `the fake wrote ${blocked} bytes: it never reached the bound`)
    assert.ok(blocked < 2 * MiB + 512 * 1024, `the fake wrote ${blocked} bytes while JavaScript was blocked`)
  })

  test('stop() while the reader is paused still ends the sidecar (its stdout is read again)', async () => {
    const ipc = ipcWithBound(MiB)
    const { file: progress, written } = progressFile('flood-stop')
    await withTimeout(ipc.start(), 5000, 'start()')
    const pid = ipc.pid
    let stopping = null
    let goneWhileBlocked = null
    ipc.on('pc.flood', () => {
      if (stopping) return
      // wait (bounded) until the reader has paused: the fake's count stops moving
      let last = -1
      for (let i = 0; i < 100; i++) {
        busyWait(50)
        const w = written()
        if (w === last && w >= MiB) break
        last = w
      }
      // A long grace period, and the JavaScript thread stays blocked: nothing of the
      // backlog is given back, so only stop() itself can make the reader drain the pipe
      // and let the sidecar see its stdin close.
      stopping = ipc.stop(60000)
      const end = performance.now() + 5000
      while (isAlive(pid) && performance.now() < end) busyWait(10)
      goneWhileBlocked = !isAlive(pid)
    })
    try {
      await withTimeout(ipc.request('flood', {}, { count: COUNT, size: FRAME, progress }), 5000, 'flood')
      await waitFor(() => stopping !== null, 10000, 'the first flood event')
      assert.equal(goneWhileBlocked, true, 'the sidecar was still running 5 s after stop()')
      await withTimeout(stopping, 10000, 'stop()')
    } finally {
      await withTimeout(ipc.stop(1000), 5000, 'stop()')
    }
  })

  test('control: with a bound of 1 GiB the same flood is read on regardless', async () => {
    const blocked = await flood(1 << 30, 32 * MiB, 10000)
    assert.ok(blocked >= 32 * MiB, `the fake wrote only ${blocked} bytes while JavaScript was blocked`)
  })
})

describe('timeouts and lifecycle', () => {
  test('request timeout message', async () => {
    // the timeout also bounds start()'s ping, which a loaded machine can take a while to
    // answer (the fake sidecar is a Node process): leave it room
    await withIpc({ binPath: bin('echo'), timeout: 1500, logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const t0 = Date.now()
      await withTimeout(
        assert.rejects(ipc.request('nothing'), (err) => {
          assert.ok(err instanceof Error)
          assert.equal(err.message, 'request timeout: nothing (id=2)')
          return true
        }),
        3000,
        'timeout rejection',
      )
      const dt = Date.now() - t0
      assert.ok(dt >= 1400 && dt < 3000, `timed out after ${dt} ms`)
      // still usable after a timeout
      const r = await withTimeout(ipc.request('ping'), 3000, 'ping')
      assert.equal(r.header.id, 3)
    })
  })

  test("not started; 'already started'; stop() on idle instances", async () => {
    const idle = new PionIpc({ binPath: bin('echo'), logger: () => {} })
    await withTimeout(assert.rejects(idle.request('ping'), { message: 'not started' }), 1000, 'not started')
    await withTimeout(idle.stop(), 1000, 'stop() never started')
    await withTimeout(idle.stop(), 1000, 'stop() again')
    assert.equal(idle.started, false)

    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      const p1 = ipc.start()
      const p2 = ipc.start()
      await withTimeout(assert.rejects(p2, { message: 'already started' }), 3000, 'second start')
      await withTimeout(p1, 5000, 'first start')
      assert.equal(ipc.started, true)
      await withTimeout(assert.rejects(ipc.start(), { message: 'already started' }), 3000, 'third start')
      assert.equal(ipc.started, true)
      const r = await withTimeout(ipc.request('ping'), 3000, 'ping')
      assert.equal(r.header.ok, true)
      await withTimeout(ipc.stop(), 3000, 'stop')
      await withTimeout(ipc.stop(), 3000, 'stop twice')
      assert.equal(ipc.started, false)
      await withTimeout(assert.rejects(ipc.request('ping'), { message: 'not started' }), 1000, 'after stop')
    })
  })

  test("stop() rejects pending requests with 'ipc stopped' and emits no 'exit'", async () => {
    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const pid = ipc.pid
      let exits = 0
      ipc.on('exit', () => exits++)
      const pending = [ipc.request('nothing'), ipc.request('nothing'), ipc.request('nothing')].map(settle)
      await sleep(30)
      await withTimeout(ipc.stop(), 6000, 'stop()')
      assert.equal(ipc.started, false)
      const results = await withTimeout(Promise.all(pending), 2000, 'pending settle')
      for (const r of results) {
        assert.equal(r.ok, false)
        assert.equal(r.error.message, 'ipc stopped')
      }
      await sleep(200)
      assert.equal(exits, 0)
      assert.equal(isAlive(pid), false)
    })
  })

  test("crash: pending requests reject before 'exit' (code 7)", async () => {
    // The old SDK rejected every pending request, then emitted 'exit' synchronously: inside
    // an 'exit' listener every pending request is already rejected (its .catch handlers
    // run later, as microtasks). Checked in the listener itself via the promise state.
    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      for (let round = 0; round < 20; round++) {
        await withTimeout(ipc.start(), 5000, 'start()')
        const raw = [ipc.request('nothing'), ipc.request('nothing'), ipc.request('nothing')]
        const settled = raw.map(settle)
        let statesAtExit = null
        let exitArgs = null
        const exitP = new Promise((resolve) => {
          ipc.once('exit', (...args) => {
            exitArgs = args
            statesAtExit = raw.map((p) => {
              const s = util.inspect(p)
              return s.includes('<rejected>') ? 'rejected' : s.includes('<pending>') ? 'pending' : 'resolved'
            })
            resolve()
          })
        })
        const exitReq = settle(ipc.request('exit', {}, { code: 7 }))
        await withTimeout(exitP, 3000, "'exit' event")
        assert.deepEqual(exitArgs, [7, null])
        const results = await withTimeout(Promise.all([...settled, exitReq]), 2000, 'rejections')
        for (const r of results) {
          assert.equal(r.ok, false)
          assert.equal(r.error.message, 'process exited (code=7, signal=null)')
        }
        assert.deepEqual(
          statesAtExit,
          ['rejected', 'rejected', 'rejected'],
          `round ${round}: pending requests must be rejected before 'exit' is emitted`,
        )
        assert.equal(ipc.started, false)
        await withTimeout(assert.rejects(ipc.request('ping'), { message: 'not started' }), 1000, 'not started')
      }
    })
  })

  test("SIGKILL of ipc.pid: 'exit' (null, 'SIGKILL')", async () => {
    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const pending = settle(ipc.request('nothing'))
      const exitP = onceEvent(ipc, 'exit', 3000)
      process.kill(ipc.pid, 'SIGKILL')
      const [code, signal] = await exitP
      assert.equal(code, null)
      assert.equal(signal, 'SIGKILL')
      const r = await withTimeout(pending, 2000, 'pending')
      assert.equal(r.ok, false)
      assert.equal(r.error.message, 'process exited (code=null, signal=SIGKILL)')
      assert.equal(ipc.started, false)
      assert.equal(ipc.pid, null)
    })
  })
})

describe('start failures', () => {
  test('exit-at-start: start() rejects, instance restartable', async () => {
    const flag = path.join(tmp, 'switch-flag')
    const sw = writeScript(
      path.join(tmp, 'switch.sh'),
      `if [ -f "${flag}" ]; then ${fakeCmd('echo')}; else ${fakeCmd('exit-at-start')}; fi`,
    )
    await withIpc({ binPath: sw, logger: () => {} }, async (ipc) => {
      let exits = 0
      ipc.on('exit', () => exits++)
      await withTimeout(
        assert.rejects(ipc.start(), (err) => {
          assert.ok(err instanceof Error)
          assert.match(err.message, /^process exited/)
          return true
        }),
        5000,
        'start() failure',
      )
      assert.equal(ipc.started, false)
      // again (same failure, but not 'already started')
      await withTimeout(assert.rejects(ipc.start(), /^Error: process exited/), 5000, 'second start()')
      assert.equal(ipc.started, false)
      fs.writeFileSync(flag, '')
      await withTimeout(ipc.start(), 5000, 'third start()')
      assert.equal(ipc.started, true)
      const r = await withTimeout(ipc.request('ping'), 3000, 'ping')
      assert.equal(r.header.ok, true)
    })
  })

  test('silent: start() rejects with the ping timeout and the process is gone', async () => {
    const { lines, logger } = collector()
    await withIpc({ binPath: bin('silent'), timeout: 300, logger }, async (ipc) => {
      await withTimeout(
        assert.rejects(ipc.start(), (err) => {
          assert.equal(err.message, 'request timeout: ping (id=1)')
          return true
        }),
        5000,
        'start() failure',
      )
      assert.equal(ipc.started, false)
      await waitFor(() => pidFromLines(lines, 'silent') !== null, 2000, 'pid line')
      const pid = pidFromLines(lines, 'silent')
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' })
    })
  })

  test('missing binPath: ENOENT, restartable', async () => {
    const missing = path.join(tmp, 'appears-later.sh')
    await withIpc({ binPath: missing, logger: () => {} }, async (ipc) => {
      const errors = []
      ipc.on('error', (e) => errors.push(e))
      await withTimeout(
        assert.rejects(ipc.start(), (err) => {
          assert.ok(err instanceof Error)
          assert.match(err.message, /ENOENT/)
          return true
        }),
        3000,
        'start() ENOENT',
      )
      assert.equal(ipc.started, false)
      writeScript(missing, fakeCmd('echo'))
      await withTimeout(ipc.start(), 5000, 'start() after the file appeared')
      assert.equal(ipc.started, true)
    })
  })

  test('non-executable binPath: EACCES', async () => {
    const file = path.join(tmp, 'not-executable.sh')
    fs.writeFileSync(file, `#!/bin/sh\n${fakeCmd('echo')}\n`)
    fs.chmodSync(file, 0o644)
    await withIpc({ binPath: file, logger: () => {} }, async (ipc) => {
      await withTimeout(
        assert.rejects(ipc.start(), (err) => {
          assert.match(err.message, /EACCES/)
          return true
        }),
        3000,
        'start() EACCES',
      )
      assert.equal(ipc.started, false)
      fs.chmodSync(file, 0o755)
      await withTimeout(ipc.start(), 5000, 'start() once executable')
      assert.equal(ipc.started, true)
    })
  })

  test("junk-stdout: start() rejects and 'error' is emitted", async () => {
    const { lines, logger } = collector()
    await withIpc({ binPath: bin('junk-stdout'), logger }, async (ipc) => {
      const errP = onceEvent(ipc, 'error', 5000)
      await withTimeout(assert.rejects(ipc.start()), 5000, 'start() failure')
      assert.equal(ipc.started, false)
      const [err] = await errP
      assert.ok(err instanceof Error)
      await waitFor(() => lines.some((l) => l.includes(err.message)), 2000, 'error logged')
    })
  })
})

describe('malformed frames', () => {
  for (const mode of ['garbage', 'oversized']) {
    test(`${mode}: 'error', logged, killed, then 'exit'; pending rejects`, async () => {
      const { lines, logger } = collector()
      await withIpc({ binPath: bin(mode), logger }, async (ipc) => {
        const order = []
        let error = null
        ipc.on('error', (e) => {
          error = e
          order.push('error')
        })
        await withTimeout(ipc.start(), 5000, 'start()')
        const pid = ipc.pid
        const pending = settle(ipc.request('nothing'))
        const [code, signal] = await onceEvent(ipc, 'exit', 3000)
        order.push('exit')
        assert.deepEqual(order, ['error', 'exit'])
        assert.ok(error instanceof Error)
        assert.equal(code, null)
        assert.equal(signal, 'SIGKILL')
        const r = await withTimeout(pending, 2000, 'pending')
        assert.equal(r.ok, false)
        assert.match(r.error.message, /^process exited \(code=null, signal=SIGKILL\)$/)
        await waitFor(() => lines.some((l) => l.includes(error.message)), 2000, 'error logged')
        assert.equal(ipc.started, false)
        assert.equal(isAlive(pid), false)
      })
    })

    test(`${mode}: without an 'error' listener nothing throws`, async () => {
      const { lines, logger } = collector()
      const uncaught = []
      const onUncaught = (err) => uncaught.push(err)
      process.on('uncaughtException', onUncaught)
      try {
        await withIpc({ binPath: bin(mode), logger }, async (ipc) => {
          await withTimeout(ipc.start(), 5000, 'start()')
          assert.equal(ipc.listenerCount('error'), 0)
          const pending = settle(ipc.request('nothing'))
          const [code, signal] = await onceEvent(ipc, 'exit', 3000)
          assert.equal(code, null)
          assert.equal(signal, 'SIGKILL')
          const r = await withTimeout(pending, 2000, 'pending')
          assert.match(r.error.message, /^process exited \(/)
          await waitFor(() => lines.some((l) => /malformed/i.test(l)), 2000, 'error logged')
        })
        await sleep(50)
        assert.deepEqual(uncaught, [])
      } finally {
        process.off('uncaughtException', onUncaught)
      }
    })
  }
})

describe('stopping', () => {
  test('stubborn: stop(300) escalates to SIGKILL within ~2.5 s', async () => {
    await withIpc({ binPath: bin('stubborn'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const pid = ipc.pid
      let exits = 0
      ipc.on('exit', () => exits++)
      const t0 = Date.now()
      await withTimeout(ipc.stop(300), 5000, 'stop(300)')
      const dt = Date.now() - t0
      assert.ok(dt < 2500, `stop(300) took ${dt} ms`)
      assert.ok(dt >= 250, `stop(300) returned after only ${dt} ms`)
      assert.equal(isAlive(pid), false)
      assert.equal(ipc.started, false)
      await sleep(50)
      assert.equal(exits, 0)
    })
  })
})

describe('watchdog', () => {
  test("autoRestart: 'exit' then 'restart', new pid answers", async () => {
    await withIpc({ binPath: bin('echo'), autoRestart: true, logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      const oldPid = ipc.pid
      const order = []
      ipc.on('exit', () => order.push('exit'))
      ipc.on('restart', () => order.push('restart'))
      const exitP = onceEvent(ipc, 'exit', 3000)
      const restartP = onceEvent(ipc, 'restart', 3000)
      const req = settle(ipc.request('exit'))
      const [code, signal] = await exitP
      assert.equal(code, 7)
      assert.equal(signal, null)
      const tExit = Date.now()
      await restartP
      const dt = Date.now() - tExit
      assert.ok(dt < 1000, `restart took ${dt} ms`)
      assert.deepEqual(order, ['exit', 'restart'])
      assert.equal(ipc.started, true)
      assert.equal(typeof ipc.pid, 'number')
      assert.notEqual(ipc.pid, oldPid)
      assert.equal(isAlive(oldPid), false)
      const r = await withTimeout(ipc.request('ping'), 3000, 'ping after restart')
      assert.equal(r.header.ok, true)
      assert.equal((await withTimeout(req, 1000, 'exit request')).ok, false)

      // Crash again and stop during the backoff: no restart follows.
      const exit2 = onceEvent(ipc, 'exit', 3000)
      process.kill(ipc.pid, 'SIGKILL')
      await exit2
      await withTimeout(ipc.stop(), 3000, 'stop during backoff')
      assert.equal(ipc.started, false)
      await sleep(800)
      assert.deepEqual(order, ['exit', 'restart', 'exit'])
      assert.equal(ipc.started, false)
      assert.equal(ipc.pid, null)
    })
  })

  test('autoRestart with maxBackoffMs: 0 and restartResetWindowMs restarts at once', async () => {
    await withIpc(
      { binPath: bin('echo'), autoRestart: true, maxBackoffMs: 0, restartResetWindowMs: 10, logger: () => {} },
      async (ipc) => {
        await withTimeout(ipc.start(), 5000, 'start()')
        for (let i = 0; i < 3; i++) {
          const exitP = onceEvent(ipc, 'exit', 3000)
          const restartP = onceEvent(ipc, 'restart', 3000)
          process.kill(ipc.pid, 'SIGKILL')
          await exitP
          const t0 = Date.now()
          await restartP
          assert.ok(Date.now() - t0 < 500, `restart ${i} took ${Date.now() - t0} ms`)
          assert.equal(ipc.started, true)
          const r = await withTimeout(ipc.request('ping'), 3000, 'ping')
          assert.equal(r.header.ok, true)
        }
      },
    )
  })

  test('autoRestart: false (default) does not restart', async () => {
    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      let restarts = 0
      ipc.on('restart', () => restarts++)
      const exitP = onceEvent(ipc, 'exit', 3000)
      process.kill(ipc.pid, 'SIGKILL')
      await exitP
      await sleep(400)
      assert.equal(restarts, 0)
      assert.equal(ipc.started, false)
    })
  })
})

describe('stderr flood', () => {
  test('a slow logger never stalls the sidecar', async () => {
    let slowUntil = 0
    let lastPing = 0
    const pings = []
    let ipc
    const logger = () => {
      if (Date.now() >= slowUntil) return
      busyWait(1)
      // While the JavaScript thread is held by this logger, keep sending pings every
      // 100 ms. Their timeout (1 s) runs outside JavaScript: a stalled sidecar (stderr
      // pipe full) would let them time out.
      if (Date.now() - lastPing >= 100 && pings.length < 20) {
        lastPing = Date.now()
        pings.push(settle(ipc.request('ping')))
      }
    }
    await withIpc({ binPath: bin('stderr-flood'), logger, timeout: 1000 }, async (instance) => {
      ipc = instance
      await withTimeout(ipc.start(), 5000, 'start()')
      slowUntil = Date.now() + 2000
      // The logger holds the thread until slowUntil; give it time to do so.
      await waitFor(() => Date.now() >= slowUntil + 100, 6000, 'slow phase')
      assert.ok(pings.length >= 10, `only ${pings.length} pings were sent during the slow phase`)
      const results = await withTimeout(Promise.all(pings), 5000, 'ping results')
      for (const r of results) {
        assert.equal(r.ok, true, r.ok ? '' : `ping failed: ${r.error.message}`)
      }
      // and afterwards it still answers promptly
      const t0 = Date.now()
      await withTimeout(ipc.request('ping'), 1000, 'ping after slow phase')
      assert.ok(Date.now() - t0 < 1000)
    })
  })

  test('a no-op logger: pings answered promptly for 2 s', async () => {
    await withIpc({ binPath: bin('stderr-flood'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      for (let i = 0; i < 20; i++) {
        const t0 = Date.now()
        const r = await withTimeout(ipc.request('ping'), 2000, `ping ${i}`)
        assert.equal(r.header.ok, true)
        assert.ok(Date.now() - t0 < 1000, `ping ${i} took ${Date.now() - t0} ms`)
        await sleep(100)
      }
    })
  })

  test('default logger (console.warn stubbed to a no-op): pings answered promptly', async () => {
    const original = console.warn
    let warned = 0
    console.warn = () => {
      warned++
    }
    try {
      await withIpc({ binPath: bin('stderr-flood') }, async (ipc) => {
        await withTimeout(ipc.start(), 5000, 'start()')
        for (let i = 0; i < 10; i++) {
          const t0 = Date.now()
          const r = await withTimeout(ipc.request('ping'), 2000, `ping ${i}`)
          assert.equal(r.header.ok, true)
          assert.ok(Date.now() - t0 < 1000, `ping ${i} took ${Date.now() - t0} ms`)
          await sleep(100)
        }
      })
    } finally {
      console.warn = original
    }
    assert.ok(warned > 1000, `console.warn called ${warned} times`)
  })
})

describe('option validation', () => {
  test('constructor options', () => {
    assert.throws(() => new PionIpc({ timeout: -1 }), RangeError)
    assert.throws(() => new PionIpc({ timeout: 'x' }), TypeError)
    assert.throws(() => new PionIpc({ logger: 5 }), TypeError)
    assert.throws(() => new PionIpc({ binPath: 5 }), TypeError)
    assert.throws(() => new PionIpc({ autoRestart: 'yes' }), TypeError)
    // accepted
    new PionIpc()
    new PionIpc({})
    new PionIpc({ timeout: 1, autoRestart: false, maxBackoffMs: 0, restartResetWindowMs: 1000 })
  })

  test('request(5) rejects with a TypeError', async () => {
    await withIpc({ binPath: bin('echo'), logger: () => {} }, async (ipc) => {
      await withTimeout(ipc.start(), 5000, 'start()')
      await withTimeout(assert.rejects(ipc.request(5), TypeError), 1000, 'request(5)')
      // and on a stopped instance too
      const idle = new PionIpc({ binPath: bin('echo') })
      await withTimeout(assert.rejects(idle.request(5), TypeError), 1000, 'request(5) idle')
    })
  })
})
