// A careless or hostile user: values at the edge of what JavaScript can pass, duplicate ids,
// listeners that close or stop from inside, sidecar events named like our own. Each case
// failed before its fix; cases that could abort the process run in a child of their own, so
// that a regression is a failure here and not the end of the runner.
//
// Opens WebRTC connections: run through scripts/netns-run.sh.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { PionIpc, RTCPeerConnection } from '../index.mjs'
import { connectPair } from './helpers/webrtc.mjs'
import { fakeSidecars } from './helpers/fake.mjs'
import { withTimeout, nextEvent, sleep, until } from './helpers/util.mjs'

const INDEX = new URL('../index.mjs', import.meta.url).href

/** Runs `body` (the text of an async function body with `PionIpc` and `RTCPeerConnection` in
 * scope) in a Node child; resolves with what it returned (JSON), or rejects with how the
 * child ended. */
function inChild(body, ms = 20000, flags = []) {
  const script = `import { PionIpc, RTCPeerConnection } from ${JSON.stringify(INDEX)}
const result = await (async () => { ${body} })()
console.log(JSON.stringify(result))`
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...flags, '--input-type=module', '-e', script], { timeout: ms, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`child ended with ${err.signal ?? `code ${err.code}`}\n${stderr.slice(-2000)}`))
      else resolve(JSON.parse(stdout.trim().split('\n').pop()))
    })
  })
}

let ipc
before(async () => {
  ipc = new PionIpc()
  await withTimeout(ipc.start(), 10000, 'ipc.start()')
})
after(async () => {
  if (ipc?.started) await withTimeout(ipc.stop(), 7000, 'ipc.stop()')
})

describe('durations from JavaScript', () => {
  test('timeouts beyond 2^31 - 1 ms are a RangeError at the call, never a panic; the limit itself works', async () => {
    const result = await inChild(`
      const out = {}
      const name = (f) => { try { f(); return 'ok' } catch (e) { return e.constructor.name + ': ' + e.message } }
      for (const [key, value] of [['timeout', 1e300], ['timeout', 1e22], ['timeout', 2147483648], ['maxBackoffMs', 1e300], ['restartResetWindowMs', 1e300], ['restartResetWindowMs', 1e22]]) {
        out[key + '=' + value] = name(() => new PionIpc({ [key]: value }))
      }
      const ipc = new PionIpc({ timeout: 2147483647, maxBackoffMs: 2147483647, restartResetWindowMs: 2147483647 })
      await ipc.start()
      out.ping = (await ipc.request('ping')).header.ok
      out.stop = await ipc.stop(1e300).then(() => 'resolved', (e) => e.constructor.name + ': ' + e.message)
      out.startedAfterBadStop = ipc.started
      await ipc.stop(2147483647)
      out.stopped = !ipc.started
      return out
    `)
    for (const [key, value] of Object.entries(result)) {
      if (['ping', 'stop', 'startedAfterBadStop', 'stopped'].includes(key)) continue
      assert.match(value, /^RangeError: .*from 0 to 2147483647/, key)
    }
    assert.equal(result.ping, true)
    assert.match(result.stop, /^RangeError: timeout/)
    assert.equal(result.startedAfterBadStop, true, 'a refused stop() does not stop')
    assert.equal(result.stopped, true)
  })
})

describe('garbage collection', () => {
  test('connections that only close() could make emit again are collected when dropped; live ones are not', async () => {
    const counts = await inChild(`
      const N = 200
      const collected = {}
      const registry = new FinalizationRegistry((kind) => { collected[kind] = (collected[kind] ?? 0) + 1 })
      const make = (kind, options) => registry.register(new RTCPeerConnection(options), kind)
      const never = new PionIpc()
      const crashing = new PionIpc({ autoRestart: false, logger: () => {} })
      const live = new PionIpc()
      await crashing.start()
      await live.start()
      for (let i = 0; i < N; i++) {
        make('never started', { _ipc: never })
        make('bad settings', { _ipc: live, settings: { sctpRtoMax: -1 } })
        make('no _ipc', undefined)
        make('no options', 42)
      }
      const created = (ipc) => Array.from({ length: N }, () => new RTCPeerConnection({ _ipc: ipc }))
      const onCrashing = created(crashing)
      const closed = created(live)
      const alive = created(live)
      await Promise.all([...onCrashing, ...closed, ...alive].map((pc) => pc.createOffer()))
      await Promise.all(closed.map((pc) => pc.close()))
      for (const [kind, list] of [['failed with its sidecar', onCrashing], ['closed', closed], ['live', alive]]) {
        for (const pc of list) registry.register(pc, kind)
        list.length = 0
      }
      const exited = new Promise((resolve) => crashing.once('exit', resolve))
      process.kill(crashing.pid, 'SIGKILL')
      await exited
      await new Promise((resolve) => setTimeout(resolve, 200))
      for (let i = 0; i < 30; i++) {
        globalThis.gc()
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      await live.stop()
      return collected
    `, 60000, ['--expose-gc'])
    for (const kind of ['never started', 'bad settings', 'no _ipc', 'no options', 'failed with its sidecar', 'closed']) {
      assert.equal(counts[kind], 200, `${kind}: ${counts[kind] ?? 0} of 200 collected (${JSON.stringify(counts)})`)
    }
    assert.equal(counts.live ?? 0, 0, 'a live connection can still emit: it is kept')
  })

  test('a collected channel gives its slot of the per-message calls back; a slot nothing holds is refused', async () => {
    const result = await inChild(`
      const { createRequire } = await import('node:module')
      const binding = createRequire(${JSON.stringify(INDEX)})('./binding.js')
      const NATIVE = Symbol.for('pion-node-rs.native')
      const N = 100
      const ipc = new PionIpc()
      await ipc.start()
      // the first channel of this process: slot 0, what ToUint32 makes of NaN and others
      const live = new RTCPeerConnection({ _ipc: ipc }).createDataChannel('live')
      const liveSlot = live[NATIVE].slot
      const slotsOf = async () => {
        const pc = new RTCPeerConnection({ _ipc: ipc })
        const channels = Array.from({ length: N }, (_, i) => pc.createDataChannel('c' + i))
        const slots = channels.map((dc) => dc[NATIVE].slot)
        const states = new Set(channels.map((dc) => dc.readyState))
        await pc.close()
        return { slots, states: [...states], closed: channels.every((dc) => dc.readyState === 'closed') }
      }
      const first = await slotsOf()
      for (let i = 0; i < 30; i++) {
        globalThis.gc()
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      const second = await slotsOf()
      const hot = binding.hotCalls()
      const unknown = 1e6
      let sendError = null
      try {
        hot.send(unknown, 'x')
      } catch (err) {
        sendError = String(err)
      }
      // not slot numbers, even where ToUint32 would make them 0 (the live channel's slot)
      const notSlots = [NaN, -1, 0.5, '0', undefined, null, 2 ** 32].map((n) => hot.readyState(n))
      const result = {
        first,
        second,
        unknown: { bufferedAmount: hot.bufferedAmount(unknown), readyState: hot.readyState(unknown), sendError },
        live: { slot: liveSlot, state: hot.readyState(live[NATIVE].slot) },
        notSlots,
      }
      await ipc.stop()
      return result
    `, 60000, ['--expose-gc'])
    assert.deepEqual(result.first.states, ['connecting'])
    assert.equal(result.first.closed, true)
    assert.equal(new Set(result.first.slots).size, 100, 'every live channel has a slot of its own')
    const firstMax = Math.max(...result.first.slots)
    assert.ok(Math.max(...result.second.slots) <= firstMax, `slots given again after collection (${firstMax} before, ${Math.max(...result.second.slots)} after)`)
    assert.deepEqual(result.unknown.bufferedAmount, 0)
    assert.deepEqual(result.unknown.readyState, 3, "an unknown slot reads as 'closed'")
    assert.match(result.unknown.sendError, /^Error: .*unknown channel slot/)
    assert.deepEqual(result.live, { slot: 0, state: 0 }, "the live channel's slot reads its state ('connecting')")
    assert.deepEqual(result.notSlots, [3, 3, 3, 3, 3, 3, 3], 'what is not a slot number reads as closed')
  })
})

describe('PionIpc state', () => {
  test('stop() takes effect at the call: started is false at once, and start() right after succeeds (20 times)', async () => {
    const own = new PionIpc()
    try {
      for (let i = 0; i < 20; i++) {
        await withTimeout(own.start(), 10000, `start ${i}`)
        const stopped = own.stop()
        assert.equal(own.started, false, `started right after stop() (round ${i})`)
        await withTimeout(own.start(), 10000, `start right after stop() (round ${i})`)
        assert.equal(own.started, true)
        await withTimeout(stopped, 7000, 'the first stop() resolves')
        assert.equal(own.started, true, 'the old sidecar ending does not stop the new one')
        assert.equal((await withTimeout(own.request('ping'), 3000, 'ping')).header.ok, true)
        await withTimeout(own.stop(), 7000, 'stop')
      }
    } finally {
      await own.stop()
    }
  })

  test('a connection made right after stop() and start() is not failed by the old sidecar ending', async () => {
    const own = new PionIpc()
    try {
      await own.start()
      const stopped = own.stop()
      await own.start()
      const pc = new RTCPeerConnection({ _ipc: own })
      const states = []
      pc.on('connectionstatechange', () => states.push(pc.connectionState))
      await withTimeout(stopped, 7000, 'stop')
      await withTimeout(pc.createOffer(), 5000, 'createOffer on the new sidecar')
      await sleep(50)
      assert.deepEqual(states, [])
      await pc.close()
    } finally {
      await own.stop()
    }
  })
})

describe('connections', () => {
  test('a second connection with a live one\'s _pcId is refused and leaves the live one working', async () => {
    const { a, b, dcA, dcB } = await connectPair(ipc, { pcIdA: 'dup', label: 'dup' })
    try {
      const dup = new RTCPeerConnection({ _ipc: ipc, _pcId: 'dup' })
      await assert.rejects(withTimeout(dup.createOffer(), 5000, 'createOffer of the duplicate'), /peer "dup" already exists/)
      await dup.close()
      const got = nextEvent(dcA, 'message', 5000)
      dcB.send('still heard')
      assert.equal((await got)[0].data, 'still heard')
      const closed = nextEvent(dcA, 'close', 10000)
      await b.close()
      await closed
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('a second close() resolves only once the connection and its channels are closed (10 times)', async () => {
    for (let i = 0; i < 10; i++) {
      const { a, b, dcA } = await connectPair(ipc, { label: `twice-${i}` })
      // Something to drain, so that the channel stays 'closing' for a while.
      for (let j = 0; j < 64; j++) dcA.send(Buffer.alloc(16384))
      a.close()
      await withTimeout(a.close(), 10000, 'second close()')
      assert.equal(a.connectionState, 'closed', `round ${i}`)
      assert.equal(dcA.readyState, 'closed', `round ${i}`)
      await b.close()
    }
  })
})

describe('messages after close', () => {
  test('channel.close() inside a message listener: no later message is delivered', async () => {
    const { a, b, dcA, dcB } = await connectPair(ipc, { label: 'close-inside' })
    try {
      let after = 0
      let count = 0
      dcB.on('message', () => {
        count++
        if (count === 5) dcB.close()
        else if (count > 5) after++
      })
      const closed = nextEvent(dcB, 'close', 10000)
      for (let i = 0; i < 100; i++) dcA.send(`m${i}`)
      await closed
      await sleep(100)
      assert.equal(count, 5 + after)
      assert.equal(after, 0, `${after} messages delivered after close()`)
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('pc.close() inside a message listener: no later message is delivered', async () => {
    const { a, b, dcA, dcB } = await connectPair(ipc, { label: 'pc-close-inside' })
    try {
      let after = 0
      let count = 0
      let closing
      dcB.on('message', () => {
        count++
        if (count === 5) closing = b.close()
        else if (count > 5) after++
      })
      for (let i = 0; i < 100; i++) dcA.send(`m${i}`)
      await until(() => count >= 5, 10000, 'five messages')
      await withTimeout(closing, 10000, 'pc.close()')
      await sleep(100)
      assert.equal(after, 0, `${after} messages delivered after pc.close()`)
    } finally {
      await a.close()
      await b.close()
    }
  })
})

describe('an unpaced sender', () => {
  test('with _maxBufferedAmount, send() over it throws OperationError and is not counted; without, it is not limited', async () => {
    const limit = 4 * 16384
    const chunk = Buffer.alloc(16384)
    const capped = await connectPair(ipc, { label: 'capped', pcOptionsA: { _maxBufferedAmount: limit } })
    const free = await connectPair(ipc, { label: 'free' })
    try {
      const dc = capped.dcA
      let sent = 0
      let threw = null
      try {
        // nothing is acknowledged within one synchronous loop: the fifth must be refused
        for (; sent < 100; sent++) dc.send(chunk)
      } catch (err) {
        threw = err
      }
      assert.equal(sent, 4, 'four messages fit')
      assert.equal(threw?.name, 'OperationError', String(threw))
      assert.match(threw.message, /over the connection's _maxBufferedAmount of 65536/)
      assert.ok(dc.bufferedAmount <= limit, `the refused message is not counted (${dc.bufferedAmount})`)
      assert.equal(dc.readyState, 'open')
      for (let i = 0; i < 64; i++) free.dcA.send(chunk)
      assert.ok(free.dcA.bufferedAmount > limit, 'without the option nothing is refused')
    } finally {
      for (const pair of [capped, free]) {
        await pair.a.close()
        await pair.b.close()
      }
    }
  })

  test('_maxBufferedAmount: -1 fails the connection with a RangeError', async () => {
    const pc = new RTCPeerConnection({ _ipc: ipc, _maxBufferedAmount: -1 })
    await assert.rejects(withTimeout(pc.createOffer(), 3000, 'createOffer'), RangeError)
    await pc.close()
  })
})

describe('closing with a sidecar backlog', () => {
  test('no request error is logged for the backlog polls of a closed channel (5 rounds)', async () => {
    const lines = []
    const own = new PionIpc({ logger: (line) => lines.push(line) })
    await own.start()
    try {
      const { a, b, dcA } = await connectPair(own, { label: 'backlog', settings: { sctpRtoMax: 200 } })
      const chunk = Buffer.alloc(16384)
      for (let round = 0; round < 5; round++) {
        // channel labels are reusable once closed
        const dc = round === 0 ? dcA : a.createDataChannel(`backlog-${round}`)
        if (dc.readyState !== 'open') await nextEvent(dc, 'open', 10000)
        for (let i = 0; i < 256; i++) dc.send(chunk)
        // every send acknowledged, the rest in the sidecar's own SCTP buffer: polled
        await until(() => dc.bufferedAmount < 256 * 16384 / 2, 10000, 'acknowledgements')
        await dc.close()
        await sleep(300)
      }
      assert.deepEqual(lines.filter((l) => /request error/.test(l)), [])
      await a.close()
      await b.close()
    } finally {
      await own.stop()
    }
  })
})

describe('the sidecar dies with sends in flight', () => {
  test('a channel emits at most one error, then one close', async () => {
    const own = new PionIpc({ autoRestart: false, logger: () => {} })
    await own.start()
    try {
      const { a, b, dcA } = await connectPair(own, { label: 'storm' })
      const events = []
      dcA.on('error', () => events.push('error'))
      dcA.on('close', () => events.push('close'))
      const chunk = Buffer.alloc(1024)
      for (let i = 0; i < 300; i++) dcA.send(chunk)
      const exited = nextEvent(own, 'exit', 5000)
      process.kill(own.pid, 'SIGKILL')
      await exited
      await until(() => events.includes('close'), 5000, 'close')
      await sleep(100)
      assert.ok(events.filter((e) => e === 'error').length <= 1, `events: ${events.join(',')}`)
      assert.equal(events.at(-1), 'close')
      assert.equal(events.filter((e) => e === 'close').length, 1)
      await a.close()
      await b.close()
    } finally {
      await own.stop()
    }
  })
})

describe('options of RTCPeerConnection', () => {
  const throwing = (key) => Object.defineProperty({ _ipc: ipc }, key, {
    enumerable: true,
    get() {
      throw new Error(`${key} getter boom`)
    },
  })
  const cases = [
    ['a throwing _pcId getter', () => throwing('_pcId'), TypeError, /_pcId.*_pcId getter boom/],
    ['a throwing iceServers getter', () => throwing('iceServers'), TypeError, /iceServers getter boom/],
    ['a throwing settings getter', () => throwing('settings'), TypeError, /settings getter boom/],
    ['a throwing _ipc getter', () => throwing('_ipc'), TypeError, /_ipc.*_ipc getter boom/],
    ['a Proxy that throws on every read', () => new Proxy({}, { get() { throw new Error('proxy boom') } }), TypeError, /proxy boom/],
    ['a throwing getter inside settings', () => ({ _ipc: ipc, settings: { get sctpRtoMax() { throw new Error('inner boom') } } }), TypeError, /inner boom/],
    ["settings.sctpRtoMax: '100'", () => ({ _ipc: ipc, settings: { sctpRtoMax: '100' } }), TypeError, /settings\.sctpRtoMax must be a whole number/],
    ['settings.iceFailedTimeout: true', () => ({ _ipc: ipc, settings: { iceFailedTimeout: true } }), TypeError, /settings\.iceFailedTimeout/],
    ['settings: [1, 2, 3]', () => ({ _ipc: ipc, settings: [1, 2, 3] }), TypeError, /settings must be a plain object/],
    ["settings.interfaceFilter: 'eth0'", () => ({ _ipc: ipc, settings: { interfaceFilter: 'eth0' } }), TypeError, /settings\.interfaceFilter must be an object/],
    ["settings.interfaceFilter.denyPrefixes: 'veth'", () => ({ _ipc: ipc, settings: { interfaceFilter: { denyPrefixes: 'veth' } } }), TypeError, /settings\.interfaceFilter\.denyPrefixes must be an array of strings/],
    ['settings.ipFilter.allowCIDRs: [5]', () => ({ _ipc: ipc, settings: { ipFilter: { allowCIDRs: [5] } } }), TypeError, /settings\.ipFilter\.allowCIDRs/],
  ]
  for (const [name, make, Class, re] of cases) {
    test(`${name}: the constructor does not throw; createOffer rejects with ${Class.name} naming it`, async () => {
      let pc
      assert.doesNotThrow(() => {
        pc = new RTCPeerConnection(make())
      })
      await assert.rejects(withTimeout(pc.createOffer(), 3000, 'createOffer'), (err) => {
        assert.ok(err instanceof Class, `${err.constructor.name}: ${err.message}`)
        assert.match(err.message, re)
        return true
      })
      await pc.close()
    })
  }

  test('settings of the right types pass, -0 is 0, null means absent (control)', async () => {
    const pc = new RTCPeerConnection({
      _ipc: ipc,
      settings: { sctpRtoMax: -0, iceFailedTimeout: null, interfaceFilter: { denyPrefixes: ['docker'] }, ipFilter: { allowCIDRs: ['10.99.0.0/24'] } },
    })
    const offer = await withTimeout(pc.createOffer(), 5000, 'createOffer')
    assert.equal(offer.type, 'offer')
    await pc.close()
  })
})

describe('log lines', () => {
  test('text from a remote peer cannot forge log lines or send control characters', async () => {
    const lines = []
    const own = new PionIpc({ logger: (line) => lines.push(line) })
    await own.start()
    try {
      const pc = new RTCPeerConnection({ _ipc: own })
      const forged = 'bogus\n[pion-ipc] forged\x07\x1b[2J'
      await assert.rejects(withTimeout(pc.setRemoteDescription({ type: forged, sdp: 'v=0\r\n' }), 5000, 'setRemoteDescription'))
      await pc.close()
      await until(() => lines.some((l) => l.includes('forged')), 3000, 'the error line')
      for (const line of lines) {
        assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f]/, `a control character in ${JSON.stringify(line)}`)
      }
      assert.ok(lines.some((l) => l.includes('bogus\\n[pion-ipc] forged\\x07\\x1b[2J')), 'the text is there, escaped')
    } finally {
      await own.stop()
    }
  })
})

// The fake sidecar (fault injection): a pc.create that is never answered, and events no real
// sidecar sends.
describe('with the fake sidecar', () => {
  const fakes = fakeSidecars()
  after(() => fakes.cleanup())

  test("a connection whose pc.create was pending when the sidecar was killed becomes 'failed'", async () => {
    const own = new PionIpc({ binPath: fakes.bin('echo'), autoRestart: false, logger: () => {} })
    await own.start()
    try {
      await own.request('setReply', {}, { method: 'pc.create', silent: true })
      const pc = new RTCPeerConnection({ _ipc: own })
      const states = []
      pc.on('connectionstatechange', () => states.push(pc.connectionState))
      await own.request('ping')
      const exited = nextEvent(own, 'exit', 5000)
      process.kill(own.pid, 'SIGKILL')
      await exited
      await until(() => pc.connectionState !== 'new', 3000, "leaving 'new'")
      assert.equal(pc.connectionState, 'failed')
      assert.deepEqual(states, ['failed'])
      await pc.close()
    } finally {
      await own.stop()
    }
  })

  test('sidecar events named exit, error, restart, log, newListener are not our events; pc.* and dc.* are', async () => {
    const lines = []
    const own = new PionIpc({ binPath: fakes.bin('echo'), logger: (line) => lines.push(line) })
    await own.start()
    try {
      const seen = []
      for (const name of ['exit', 'error', 'restart', 'removeListener']) own.on(name, () => seen.push(name))
      own.on('pc.test', () => seen.push('pc.test'))
      own.on('dc.test', () => seen.push('dc.test'))
      const names = ['exit', 'error', 'restart', 'log', 'newListener', 'removeListener', 'pc.test', 'dc.test', 'other.test']
      await own.request('script', {}, { events: names.map((event) => ({ event, pcId: 'x' })) })
      await own.request('ping')
      await sleep(50)
      assert.deepEqual(seen, ['pc.test', 'dc.test'])
      assert.deepEqual(lines.filter((l) => typeof l !== 'string'), [], 'the logger got only lines')
      assert.equal(own.started, true)
    } finally {
      await own.stop()
    }
  })
})

describe('closing early', () => {
  test('close() while pc.create is unanswered still closes the peer on the sidecar, and never creates its closed channel there', async () => {
    const lines = []
    const own = new PionIpc({ logger: (line) => lines.push(line) })
    await own.start()
    try {
      for (let i = 0; i < 5; i++) {
        const pc = new RTCPeerConnection({ _ipc: own, _pcId: `early-${i}` })
        const dc = pc.createDataChannel('never')
        // nothing has come back from the sidecar within this synchronous turn
        const closed = pc.close()
        await withTimeout(closed, 10000, 'close()')
        assert.equal(dc.readyState, 'closed')
      }
      assert.deepEqual(lines.filter((l) => /request error/.test(l)), [], 'no request about a channel or peer the sidecar does not know')
      // the sidecar forgot every one of them (a pc.close of its own finds none)
      for (let i = 0; i < 5; i++) {
        await assert.rejects(withTimeout(own.request('pc.close', { pcId: `early-${i}` }), 5000, 'pc.close'), /not found/, `early-${i}`)
      }
    } finally {
      await own.stop()
    }
  })

  for (const reader of ['loop', 'thread']) {
    test(`an id can be taken again right after close(): the closed connection's last events do not close the new one (${reader} reader, 40 times)`, async () => {
      const before = process.env.PION_NODE_RS_READER
      process.env.PION_NODE_RS_READER = reader
      const own = new PionIpc({ logger: () => {} })
      try {
        await own.start()
      } finally {
        if (before === undefined) delete process.env.PION_NODE_RS_READER
        else process.env.PION_NODE_RS_READER = before
      }
      try {
        for (let i = 0; i < 40; i++) {
          const pc = new RTCPeerConnection({ _ipc: own, _pcId: `reused-${i}` })
          pc.createDataChannel('x')
          await withTimeout(pc.close(), 10000, 'close()')
          const again = new RTCPeerConnection({ _ipc: own, _pcId: `reused-${i}` })
          await withTimeout(again.createOffer(), 5000, `createOffer of the new reused-${i}`)
          await sleep(5)
          assert.notEqual(again.connectionState, 'closed', `round ${i}`)
          await again.close()
        }
      } finally {
        await own.stop()
      }
    })
  }

  test('a second channel.close() during a drain resolves with the first, not at the drain limit', async () => {
    const { a, b, dcA } = await connectPair(ipc, { label: 'close-twice' })
    try {
      for (let i = 0; i < 128; i++) dcA.send(Buffer.alloc(16384))
      const first = dcA.close()
      const second = dcA.close()
      await withTimeout(first, 10000, 'the first close()')
      assert.equal(dcA.readyState, 'closed')
      // the drain limit is 5 s: a second close() that waits for it is late by seconds
      await withTimeout(second, 2000, 'the second close(), once the first is done')
    } finally {
      await a.close()
      await b.close()
    }
  })
})
