// Bad input never crashes, hangs or reaches the sidecar: every public method and option
// given a wrong type or value fails AT THE CALL (a synchronous throw for synchronous APIs, a
// rejection for promise APIs) with a clear error, and the one real sidecar of this file stays
// healthy (same pid, answers a ping) throughout.
//
// Expected classes: wrong type → TypeError; out of range → RangeError; wrong state → an Error
// whose message starts with 'InvalidStateError'.
//
// Opens WebRTC connections: run through scripts/netns-run.sh.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { PionIpc, RTCPeerConnection, RTCDataChannel, DataChannel } from '../index.mjs'
import { connectPair } from './helpers/webrtc.mjs'
import { withTimeout, nextEvent, alive, sleep } from './helpers/util.mjs'

let ipc
let pid0
const ipcExits = []
const ipcErrors = []
const unhandled = []
const logLines = []
const onUnhandled = (reason) => unhandled.push(reason)

before(async () => {
  process.on('unhandledRejection', onUnhandled)
  ipc = new PionIpc({ logger: (line) => logLines.push(line) })
  ipc.on('exit', (code, signal) => ipcExits.push({ code, signal }))
  ipc.on('error', (err) => ipcErrors.push(err))
  await withTimeout(ipc.start(), 10000, 'ipc.start()')
  pid0 = ipc.pid
  assert.ok(pid0 > 0)
})

after(async () => {
  process.off('unhandledRejection', onUnhandled)
  if (ipc?.started) await withTimeout(ipc.stop(), 7000, 'ipc.stop()')
})

/** The sidecar is the one we started, still running, and it answers a ping. */
async function assertHealthy(what = '') {
  assert.equal(ipc.started, true, `ipc still started ${what}`)
  assert.equal(ipc.pid, pid0, `same sidecar pid ${what}`)
  assert.ok(alive(pid0), `sidecar ${pid0} alive ${what}`)
  const res = await withTimeout(ipc.request('ping'), 3000, `ping ${what}`)
  assert.equal(res.header.ok, true)
  assert.deepEqual(ipcExits, [], `no exit event ${what}`)
  assert.deepEqual(ipcErrors, [], `no error event ${what}`)
}

/** `fn()` throws synchronously an instance of `Class` whose message matches `re`. */
function throwsAtCall(fn, Class, re, what) {
  let threw = null
  let result
  try {
    result = fn()
  } catch (err) {
    threw = err
  }
  if (result && typeof result.then === 'function') result.catch(() => {})
  assert.ok(threw, `${what}: expected a synchronous throw, got ${threw === null ? 'a return value' : threw}`)
  assert.ok(threw instanceof Class, `${what}: expected ${Class.name}, got ${threw?.constructor?.name}: ${threw?.message}`)
  assert.match(threw.message, re, `${what}: message`)
  return threw
}

/** `fn()` does NOT throw, returns a promise, and that promise rejects (within 3 s) with an
 * instance of `Class` whose message matches `re`. */
async function rejectsAtCall(fn, Class, re, what) {
  let result
  try {
    result = fn()
  } catch (err) {
    assert.fail(`${what}: threw synchronously (${err?.constructor?.name}: ${err?.message}) instead of rejecting`)
  }
  assert.ok(result && typeof result.then === 'function', `${what}: expected a promise`)
  let err = null
  try {
    await withTimeout(result, 3000, what)
  } catch (e) {
    err = e
  }
  assert.ok(err, `${what}: expected a rejection, it resolved`)
  assert.doesNotMatch(err.message, /^timed out after/, `${what}: hung instead of rejecting`)
  assert.ok(err instanceof Class, `${what}: expected ${Class.name}, got ${err?.constructor?.name}: ${err?.message}`)
  assert.match(err.message, re, `${what}: message`)
  return err
}

/** Collects 'error' and 'close' of a channel, in order. */
function recordChannel(dc) {
  const events = []
  dc.on('error', (err) => events.push({ name: 'error', err }))
  dc.on('close', () => events.push({ name: 'close' }))
  return events
}

function invalidState(err) {
  return err instanceof Error && /^InvalidStateError/.test(err.message)
}

describe('PionIpc constructor options', () => {
  const cases = [
    ['timeout: -1', { timeout: -1 }, RangeError, /timeout/],
    ['timeout: NaN', { timeout: NaN }, RangeError, /timeout/],
    ['timeout: Infinity', { timeout: Infinity }, RangeError, /timeout/],
    ["timeout: 'x'", { timeout: 'x' }, TypeError, /timeout/],
    ['maxBackoffMs: -5', { maxBackoffMs: -5 }, RangeError, /maxBackoffMs/],
    ["restartResetWindowMs: 'x'", { restartResetWindowMs: 'x' }, TypeError, /restartResetWindowMs/],
    ['autoRestart: 1', { autoRestart: 1 }, TypeError, /autoRestart/],
    ['binPath: 42', { binPath: 42 }, TypeError, /binPath/],
    ["logger: 'x'", { logger: 'x' }, TypeError, /logger/],
    ['options = 42', 42, TypeError, /options/],
    ["options = 'str'", 'str', TypeError, /options/],
  ]
  for (const [name, options, Class, re] of cases) {
    test(`${name} throws ${Class.name} at construction`, () => {
      throwsAtCall(() => new PionIpc(options), Class, re, `new PionIpc(${name})`)
    })
  }

  test('valid and absent options construct (control), and nothing above disturbed the sidecar', async () => {
    assert.doesNotThrow(() => new PionIpc())
    assert.doesNotThrow(() => new PionIpc({}))
    assert.doesNotThrow(() => new PionIpc({ timeout: 0, maxBackoffMs: 0, autoRestart: false, logger: () => {} }))
    await assertHealthy('after bad PionIpc options')
  })
})

describe('PionIpc.request() and stop() arguments', () => {
  test('method 42 / "" / null reject with TypeError', async () => {
    await rejectsAtCall(() => ipc.request(42), TypeError, /method/, 'request(42)')
    await rejectsAtCall(() => ipc.request(''), TypeError, /method/, "request('')")
    await rejectsAtCall(() => ipc.request(null), TypeError, /method/, 'request(null)')
    await assertHealthy()
  })

  test('opts a string, opts.pcId 5, opts.dcLabel 5 reject with TypeError', async () => {
    await rejectsAtCall(() => ipc.request('ping', 'x'), TypeError, /opts/, "request('ping', 'x')")
    await rejectsAtCall(() => ipc.request('ping', { pcId: 5 }), TypeError, /pcId/, 'opts.pcId 5')
    await rejectsAtCall(() => ipc.request('ping', { dcLabel: 5 }), TypeError, /dcLabel/, 'opts.dcLabel 5')
    await assertHealthy()
  })

  test('a payload over 16 MiB rejects with RangeError (and a large one under it passes)', async () => {
    await rejectsAtCall(
      () => ipc.request('ping', {}, Buffer.alloc(16 * 1024 * 1024 + 1)),
      RangeError,
      /16777216|limit|large/i,
      'payload of 16 MiB + 1'
    )
    await assertHealthy('after the oversized payload')
    // control: a frame just under the limit is accepted by both sides
    const res = await withTimeout(ipc.request('ping', {}, Buffer.alloc(16 * 1024 * 1024 - 64)), 5000, 'ping 16 MiB - 64')
    assert.equal(res.header.ok, true)
    await assertHealthy('after the near-limit payload')
  })

  test('a payload nested 100 levels deep, or cyclic, rejects with RangeError (no stack overflow)', async () => {
    const deep = {}
    let node = deep
    for (let i = 0; i < 100; i++) node = node.x = {}
    await rejectsAtCall(() => ipc.request('ping', {}, deep), RangeError, /deep|nest|cycl/i, '100-deep object')
    const deepArr = []
    let arr = deepArr
    for (let i = 0; i < 100; i++) arr.push((arr = []))
    await rejectsAtCall(() => ipc.request('ping', {}, deepArr), RangeError, /deep|nest|cycl/i, '100-deep array')
    const cyclic = { a: 1 }
    cyclic.self = cyclic
    await rejectsAtCall(() => ipc.request('ping', {}, cyclic), RangeError, /deep|nest|cycl/i, 'cyclic object')
    const cyclicArr = [1]
    cyclicArr.push(cyclicArr)
    await rejectsAtCall(() => ipc.request('ping', {}, cyclicArr), RangeError, /deep|nest|cycl/i, 'cyclic array')
    await assertHealthy()
  })

  test('a payload containing a function or a symbol rejects with TypeError', async () => {
    await rejectsAtCall(() => ipc.request('ping', {}, { f() {} }), TypeError, /function/, 'function in object')
    await rejectsAtCall(() => ipc.request('ping', {}, [1, [2, () => 3]]), TypeError, /function/, 'function in array')
    await rejectsAtCall(() => ipc.request('ping', {}, () => 1), TypeError, /function/, 'function payload')
    await rejectsAtCall(() => ipc.request('ping', {}, { s: Symbol('s') }), TypeError, /symbol/, 'symbol in object')
    await rejectsAtCall(() => ipc.request('ping', {}, Symbol('s')), TypeError, /symbol/, 'symbol payload')
    await assertHealthy()
  })

  test('a BigInt beyond 64 bits rejects with RangeError (64-bit ones pass)', async () => {
    await rejectsAtCall(() => ipc.request('ping', {}, { b: 2n ** 64n }), RangeError, /bigint|64/i, '2^64')
    await rejectsAtCall(() => ipc.request('ping', {}, { b: 2n ** 70n }), RangeError, /bigint|64/i, '2^70')
    await rejectsAtCall(() => ipc.request('ping', {}, { b: -(2n ** 63n) - 1n }), RangeError, /bigint|64/i, '-2^63 - 1')
    const res = await withTimeout(
      ipc.request('ping', {}, { max: 2n ** 64n - 1n, min: -(2n ** 63n) }),
      3000,
      'ping with 64-bit bigints'
    )
    assert.equal(res.header.ok, true)
    await assertHealthy()
  })

  test("stop('x') rejects with TypeError, stop(-1) / stop(NaN) with RangeError, and none of them stops", async () => {
    await rejectsAtCall(() => ipc.stop('x'), TypeError, /timeout/, "stop('x')")
    assert.equal(ipc.started, true, "stop('x') must not stop the sidecar")
    await rejectsAtCall(() => ipc.stop(-1), RangeError, /timeout/, 'stop(-1)')
    await rejectsAtCall(() => ipc.stop(NaN), RangeError, /timeout/, 'stop(NaN)')
    await assertHealthy('after bad stop() calls')
  })
})

describe('RTCPeerConnection with bad options: the constructor never throws, the connection fails', () => {
  const cases = [
    ["iceServers: 'x'", { iceServers: 'x' }, TypeError, /iceServers/],
    ['iceServers: [5]', { iceServers: [5] }, TypeError, /iceServers/],
    ['iceServers: [{ urls: 5 }]', { iceServers: [{ urls: 5 }] }, TypeError, /urls/],
    ["settings: 'x'", { settings: 'x' }, TypeError, /settings/],
    ['settings.sctpRtoMax: -1', { settings: { sctpRtoMax: -1 } }, RangeError, /sctpRtoMax/],
    ['settings.sctpRtoMax: 1.5', { settings: { sctpRtoMax: 1.5 } }, RangeError, /sctpRtoMax/],
    ['settings.sctpRtoMax: 2**32', { settings: { sctpRtoMax: 2 ** 32 } }, RangeError, /sctpRtoMax/],
    ['settings.sctpRtoMax: NaN', { settings: { sctpRtoMax: NaN } }, RangeError, /sctpRtoMax/],
    ['_pcId: 5', { _pcId: 5 }, TypeError, /_pcId/],
  ]
  for (const [name, extra, Class, re] of cases) {
    test(`${name}: methods reject with ${Class.name}, a channel errors then closes`, async () => {
      let pc
      assert.doesNotThrow(() => {
        pc = new RTCPeerConnection({ _ipc: ipc, ...extra })
      }, `new RTCPeerConnection(${name}) must not throw`)
      assert.equal(pc.connectionState, 'new')
      const dc = pc.createDataChannel('bad-options')
      const events = recordChannel(dc)
      const err = await rejectsAtCall(() => pc.createOffer(), Class, re, `${name}: createOffer()`)
      await rejectsAtCall(() => pc.createAnswer(), Class, re, `${name}: createAnswer()`)
      await rejectsAtCall(() => pc.setRemoteDescription({ type: 'offer', sdp: 'v=0' }), Class, re, `${name}: setRemoteDescription()`)
      await rejectsAtCall(() => pc.getSctpStats(), Class, re, `${name}: getSctpStats()`)
      await withTimeout(
        (async () => {
          while (!events.some((e) => e.name === 'close')) await sleep(10)
        })(),
        3000,
        `${name}: channel close`
      )
      assert.deepEqual(
        events.map((e) => e.name),
        ['error', 'close'],
        `${name}: the channel emits error then close, once each`
      )
      assert.ok(events[0].err instanceof Error, 'the channel error is an Error')
      assert.equal(events[0].err.message, err.message, 'the channel error carries the reason')
      assert.equal(dc.readyState, 'closed')
      await withTimeout(pc.close(), 3000, `${name}: pc.close()`)
      await withTimeout(pc.close(), 3000, `${name}: second pc.close()`)
      assert.equal(pc.connectionState, 'closed')
    })
  }

  test('options = 42 and no options: constructor does not throw, methods reject with TypeError', async () => {
    for (const [name, make] of [
      ['42', () => new RTCPeerConnection(42)],
      ['undefined', () => new RTCPeerConnection()],
      ["'x'", () => new RTCPeerConnection('x')],
    ]) {
      let pc
      assert.doesNotThrow(() => {
        pc = make()
      }, `new RTCPeerConnection(${name}) must not throw`)
      await rejectsAtCall(() => pc.createOffer(), TypeError, /_ipc|options/, `RTCPeerConnection(${name}).createOffer()`)
      const dc = pc.createDataChannel('x')
      const events = recordChannel(dc)
      await withTimeout(
        (async () => {
          while (dc.readyState !== 'closed') await sleep(10)
        })(),
        3000,
        `RTCPeerConnection(${name}) channel close`
      )
      await sleep(20)
      assert.deepEqual(events.map((e) => e.name), ['error', 'close'])
      await withTimeout(pc.close(), 3000, 'close')
    }
  })

  test('after all failed connections the sidecar is healthy and nothing was unhandled', async () => {
    await sleep(50)
    assert.deepEqual(unhandled, [], 'no unhandled rejection')
    await assertHealthy()
  })
})

describe('RTCPeerConnection method arguments', () => {
  let pc
  before(() => {
    pc = new RTCPeerConnection({ _ipc: ipc })
  })
  after(async () => {
    await withTimeout(pc.close(), 3000, 'pc.close()')
  })

  test('setLocalDescription(5) / ({ type: 5 }) / ({}) reject with TypeError', async () => {
    await rejectsAtCall(() => pc.setLocalDescription(5), TypeError, /description/, 'setLocalDescription(5)')
    await rejectsAtCall(() => pc.setLocalDescription({ type: 5 }), TypeError, /type/, 'setLocalDescription({type: 5})')
    await rejectsAtCall(() => pc.setLocalDescription({}), TypeError, /type/, 'setLocalDescription({})')
    await rejectsAtCall(() => pc.setRemoteDescription(5), TypeError, /description/, 'setRemoteDescription(5)')
  })

  test('addIceCandidate(null) TypeError, ({ sdpMLineIndex: -1 }) RangeError', async () => {
    await rejectsAtCall(() => pc.addIceCandidate(null), TypeError, /candidate/, 'addIceCandidate(null)')
    await rejectsAtCall(() => pc.addIceCandidate(5), TypeError, /candidate/, 'addIceCandidate(5)')
    await rejectsAtCall(
      () => pc.addIceCandidate({ sdpMLineIndex: -1 }),
      RangeError,
      /sdpMLineIndex/,
      'addIceCandidate({sdpMLineIndex: -1})'
    )
    await rejectsAtCall(
      () => pc.addIceCandidate({ candidate: '', sdpMLineIndex: 1.5 }),
      RangeError,
      /sdpMLineIndex/,
      'addIceCandidate({sdpMLineIndex: 1.5})'
    )
  })

  test("createDataChannel(5), ('x', 'y'), ('x', { ordered: 'yes' }), ('') throw TypeError", () => {
    throwsAtCall(() => pc.createDataChannel(5), TypeError, /label/, 'createDataChannel(5)')
    throwsAtCall(() => pc.createDataChannel('x', 'y'), TypeError, /options/, "createDataChannel('x', 'y')")
    throwsAtCall(() => pc.createDataChannel('x', { ordered: 'yes' }), TypeError, /ordered/, "createDataChannel('x', {ordered: 'yes'})")
    throwsAtCall(() => pc.createDataChannel(''), TypeError, /label/, "createDataChannel('')")
  })

  test('the rejected calls left the connection usable (label x is free, createOffer works)', async () => {
    const dc = pc.createDataChannel('x')
    assert.equal(dc.label, 'x')
    assert.equal(dc.readyState, 'connecting')
    const offer = await withTimeout(pc.createOffer(), 3000, 'createOffer')
    assert.equal(offer.type, 'offer')
    assert.match(offer.sdp, /^v=0/)
    await assertHealthy()
  })
})

describe('RTCDataChannel', () => {
  test('new RTCDataChannel() / new DataChannel() throw TypeError', () => {
    throwsAtCall(() => new RTCDataChannel(), TypeError, /constructor|createDataChannel/i, 'new RTCDataChannel()')
    throwsAtCall(() => new DataChannel({}), TypeError, /constructor|createDataChannel/i, 'new DataChannel({})')
  })

  test('send(undefined) on a connecting channel throws InvalidStateError', async () => {
    const pc = new RTCPeerConnection({ _ipc: ipc })
    try {
      const dc = pc.createDataChannel('connecting')
      assert.equal(dc.readyState, 'connecting')
      const err = throwsAtCall(() => dc.send(undefined), Error, /^InvalidStateError/, 'send(undefined) while connecting')
      assert.ok(invalidState(err))
      throwsAtCall(() => dc.send('x'), Error, /^InvalidStateError/, "send('x') while connecting")
      assert.equal(dc.bufferedAmount, 0)
    } finally {
      await withTimeout(pc.close(), 3000, 'pc.close()')
    }
  })

  describe('on a connected pair', () => {
    let pair
    const dcErrors = []
    before(async () => {
      pair = await connectPair(ipc)
      pair.dcA.on('error', (err) => dcErrors.push(err))
      pair.dcB.on('error', (err) => dcErrors.push(err))
    })
    after(async () => {
      if (!pair) return
      await withTimeout(Promise.all([pair.a.close(), pair.b.close()]), 5000, 'close pair')
    })

    test('bufferedAmountLowThreshold = -1 / NaN / 1.5 / Infinity / "x" throw, the value is unchanged', async () => {
      const { dcA } = pair
      dcA.bufferedAmountLowThreshold = 1024
      assert.equal(dcA.bufferedAmountLowThreshold, 1024)
      for (const [value, Class] of [
        [-1, RangeError],
        [NaN, RangeError],
        [1.5, RangeError],
        [Infinity, RangeError],
        ['x', TypeError],
        [null, TypeError],
        [{}, TypeError],
      ]) {
        throwsAtCall(
          () => {
            dcA.bufferedAmountLowThreshold = value
          },
          Class,
          /bufferedAmountLowThreshold/,
          `bufferedAmountLowThreshold = ${String(value)}`
        )
        assert.equal(dcA.bufferedAmountLowThreshold, 1024, `unchanged after = ${String(value)}`)
      }
      await sleep(50)
      assert.deepEqual(dcErrors, [], 'no error event from rejected thresholds')
    })

    test('send of 65536 bytes throws TypeError and is not counted; 65535 is fine', async () => {
      const { dcA, dcB } = pair
      const before = dcA.bufferedAmount
      throwsAtCall(() => dcA.send(Buffer.alloc(65536)), TypeError, /65535|maxMessageSize/, 'send(Buffer 65536)')
      throwsAtCall(() => dcA.send(new Uint8Array(70000)), TypeError, /65535|maxMessageSize/, 'send(Uint8Array 70000)')
      throwsAtCall(() => dcA.send(new ArrayBuffer(65536)), TypeError, /65535|maxMessageSize/, 'send(ArrayBuffer 65536)')
      throwsAtCall(() => dcA.send('x'.repeat(65536)), TypeError, /65535|maxMessageSize/, 'send(65536 ASCII chars)')
      // 32768 × 'é' is 65536 bytes of UTF-8 in 32768 UTF-16 code units
      throwsAtCall(() => dcA.send('é'.repeat(32768)), TypeError, /65535|maxMessageSize/, 'send(65536 UTF-8 bytes)')
      assert.equal(dcA.bufferedAmount, before, 'refused messages are not counted in bufferedAmount')
      assert.equal(dcA.readyState, 'open')
      // the channel still works, with the largest legal message
      const got = nextEvent(dcB, 'message', 5000)
      dcA.send(Buffer.alloc(65535, 1))
      const [{ data }] = await got
      assert.equal(data.length, 65535)
      const gotText = nextEvent(dcB, 'message', 5000)
      dcA.send('still here')
      assert.equal((await gotText)[0].data, 'still here')
      assert.deepEqual(dcErrors, [])
    })

    test('send after close throws InvalidStateError', async () => {
      const { dcA } = pair
      await withTimeout(dcA.close(), 6000, 'dcA.close()')
      assert.equal(dcA.readyState, 'closed')
      const err = throwsAtCall(() => dcA.send('late'), Error, /^InvalidStateError/, 'send after close')
      assert.ok(invalidState(err))
      throwsAtCall(() => dcA.send(undefined), Error, /^InvalidStateError/, 'send(undefined) after close')
      assert.equal(dcA.bufferedAmount, 0)
      await assertHealthy()
    })
  })
})

describe('afterwards', () => {
  test('a fresh pair connects and exchanges a message on the same, untouched sidecar', async () => {
    const { a, b, dcA, dcB } = await connectPair(ipc, { label: 'fresh' })
    try {
      const got = nextEvent(dcB, 'message', 5000)
      dcA.send('hello after the abuse')
      assert.equal((await got)[0].data, 'hello after the abuse')
      const back = nextEvent(dcA, 'message', 5000)
      dcB.send(Buffer.from([1, 2, 3]))
      assert.deepEqual([...(await back)[0].data], [1, 2, 3])
    } finally {
      await withTimeout(Promise.all([a.close(), b.close()]), 5000, 'close fresh pair')
    }
    await assertHealthy('at the end')
    assert.deepEqual(unhandled, [], 'no unhandled rejection in the whole file')
    assert.ok(!logLines.some((l) => /malformed|read loop/i.test(l)), 'the sidecar never saw a malformed frame')
  })

  test("after stop(): request rejects 'not started', and so do a new connection's methods", async () => {
    await withTimeout(ipc.stop(), 7000, 'ipc.stop()')
    assert.equal(ipc.started, false)
    await rejectsAtCall(() => ipc.request('ping'), Error, /not started/, 'request after stop')
    // argument checks still answer (no crash) on a stopped instance
    await rejectsAtCall(() => ipc.request(42), Error, /method|not started/, 'request(42) after stop')
    let pc
    assert.doesNotThrow(() => {
      pc = new RTCPeerConnection({ _ipc: ipc })
    })
    const dc = pc.createDataChannel('after-stop')
    const events = recordChannel(dc)
    await rejectsAtCall(() => pc.createOffer(), Error, /not started/, 'createOffer on a stopped ipc')
    await rejectsAtCall(() => pc.setLocalDescription({ type: 'offer', sdp: 'v=0' }), Error, /not started/, 'setLocalDescription on a stopped ipc')
    await rejectsAtCall(() => pc.addIceCandidate({ candidate: '' }), Error, /not started/, 'addIceCandidate on a stopped ipc')
    await withTimeout(
      (async () => {
        while (dc.readyState !== 'closed') await sleep(10)
      })(),
      3000,
      'channel close on a stopped ipc'
    )
    await sleep(20)
    assert.deepEqual(events.map((e) => e.name), ['error', 'close'])
    await withTimeout(pc.close(), 3000, 'pc.close() on a stopped ipc')
    assert.ok(!alive(pid0), 'the sidecar is gone after stop()')
    await sleep(20)
    assert.deepEqual(unhandled, [], 'no unhandled rejection')
  })
})
