// Careless or hostile input that passed every check and then went wrong further down
// (issue 13): typed arrays of a kind the addon did not know (Float16Array), shared memory
// (SharedArrayBuffer), and labels longer than the remote side can accept.
//
// Every typed-array kind of the running runtime is covered, found by walking the globals (so
// Float16Array is included where it exists: Node 24, Bun, Deno; Node 20 has none). Run under
// Node 24 as well to cover it.
//
// Opens WebRTC connections: run through scripts/netns-run.sh.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { PionIpc, RTCPeerConnection } from '../index.mjs'
import { connectPair } from './helpers/webrtc.mjs'
import { withTimeout, nextEvent, until, sleep } from './helpers/util.mjs'

/** The largest label, in UTF-8 bytes, that pion-ipc 0.4.1 accepts from the remote side
 * (pion reads the channel's DCEP open message into 8192 bytes, 12 of them its header). */
const LABEL_LIMIT = 8180

let ipc
const logLines = []
const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)

before(async () => {
  process.on('unhandledRejection', onUnhandled)
  ipc = new PionIpc({ logger: (line) => logLines.push(line) })
  await withTimeout(ipc.start(), 10000, 'ipc.start()')
})

after(async () => {
  process.off('unhandledRejection', onUnhandled)
  if (ipc?.started) await withTimeout(ipc.stop(), 7000, 'ipc.stop()')
  assert.deepEqual(unhandled, [], 'no unhandled rejection')
})

let pairCount = 0
/** connectPair with known pcIds (for raw ipc.request calls on the same connections). */
async function pair(label) {
  const n = ++pairCount
  const ids = [`careless-a${n}`, `careless-b${n}`]
  const names = [...ids]
  class Peer extends RTCPeerConnection {
    constructor(options) {
      super({ ...options, _pcId: names.shift() })
    }
  }
  const p = await connectPair(ipc, { label, Peer })
  return { ...p, idA: ids[0], idB: ids[1] }
}

async function closeAll(...pcs) {
  await Promise.all(pcs.filter(Boolean).map((pc) => withTimeout(pc.close(), 10000, 'pc.close()').catch(() => {})))
}

/** Every message of `dc`, in arrival order. */
function collect(dc) {
  const messages = []
  const listener = ({ data }) => messages.push(data)
  dc.on('message', listener)
  return {
    messages,
    waitFor: (n, ms = 10000) => until(() => messages.length >= n, ms, `${n} messages on ${dc.label} (have ${messages.length})`),
    stop: () => dc.off('message', listener),
  }
}

/** The typed-array constructors of this runtime: every global whose parent is %TypedArray%. */
function typedArrayKinds() {
  const TypedArray = Object.getPrototypeOf(Int8Array)
  return Object.getOwnPropertyNames(globalThis)
    .filter((name) => {
      const value = Object.getOwnPropertyDescriptor(globalThis, name)?.value
      return typeof value === 'function' && Object.getPrototypeOf(value) === TypedArray
    })
    .sort()
}

/** An ArrayBuffer (or SharedArrayBuffer) of `n` bytes, each different from its neighbours. */
function filled(n, Buf = ArrayBuffer, seed = 0) {
  const buf = new Buf(n)
  const bytes = new Uint8Array(buf)
  for (let i = 0; i < n; i++) bytes[i] = (seed + i * 37 + 11) & 0xff
  return buf
}

/** [what, value to send, the bytes expected] for every view kind over `Buf`: each typed-array
 * kind of this runtime whole, and as 3 elements from an offset of one element; DataViews;
 * a Buffer. The expected bytes are copied from the memory itself, not from the view. */
function viewCases(Buf, seed = 0) {
  const cases = []
  for (const name of typedArrayKinds()) {
    const Kind = globalThis[name]
    const size = Kind.BYTES_PER_ELEMENT
    const buf = filled(size * 5, Buf, seed++)
    cases.push([`${name} (whole)`, new Kind(buf), Buffer.from(new Uint8Array(buf).slice())])
    cases.push([`${name} (3 elements at ${size})`, new Kind(buf, size, 3), Buffer.from(new Uint8Array(buf, size, 3 * size).slice())])
  }
  const dv = filled(13, Buf, seed++)
  cases.push(['DataView (whole)', new DataView(dv), Buffer.from(new Uint8Array(dv).slice())])
  cases.push(['DataView (5 bytes at 3)', new DataView(dv, 3, 5), Buffer.from(new Uint8Array(dv, 3, 5).slice())])
  const b = filled(9, Buf, seed++)
  cases.push(['Buffer (4 bytes at 2)', Buffer.from(b, 2, 4), Buffer.from(new Uint8Array(b, 2, 4).slice())])
  return cases
}

/** Sends each case through `send` and checks that `rx` got exactly its bytes, as binary. */
async function assertDelivered(cases, send, rx, how) {
  for (const [, value] of cases) await send(value)
  await rx.waitFor(cases.length, 10000)
  await sleep(50)
  assert.equal(rx.messages.length, cases.length, `${how}: one message per send, no more`)
  cases.forEach(([what, , expected], i) => {
    const got = rx.messages[i]
    assert.ok(Buffer.isBuffer(got), `${how}, ${what}: arrives as binary (got ${typeof got}: ${String(got).slice(0, 40)})`)
    assert.equal(got.length, expected.length, `${how}, ${what}: byte length`)
    assert.deepEqual([...got], [...expected], `${how}, ${what}: bytes`)
  })
}

describe('every typed-array kind, at its full byte length (Float16Array where the runtime has it)', () => {
  let p
  before(async () => {
    p = await pair('kinds')
  })
  after(async () => {
    await closeAll(p?.a, p?.b)
  })

  test('the kinds found include all eleven of ES2020 (the walk over the globals works)', (t) => {
    const kinds = typedArrayKinds()
    for (const name of ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array']) {
      assert.ok(kinds.includes(name), `${name} found`)
    }
    assert.equal(kinds.includes('Float16Array'), typeof globalThis.Float16Array === 'function')
    t.diagnostic(`${process.version}: ${kinds.join(', ')}`)
  })

  test('dc.send(view) sends exactly the view\'s bytes, whatever its kind', async () => {
    const rx = collect(p.dcB)
    try {
      await assertDelivered(viewCases(ArrayBuffer), (v) => p.dcA.send(v), rx, 'send()')
    } finally {
      rx.stop()
    }
  })

  test('ipc.request(method, opts, view) sends exactly the view\'s bytes, whatever its kind', async () => {
    const rx = collect(p.dcB)
    try {
      const send = (v) => withTimeout(ipc.request('dc.send', { pcId: p.idA, dcLabel: 'kinds', isBinary: true }, v), 5000, 'dc.send')
      await assertDelivered(viewCases(ArrayBuffer, 100), send, rx, 'ipc.request()')
    } finally {
      rx.stop()
    }
  })
})

describe('SharedArrayBuffer: its bytes, as binary, like an ArrayBuffer', () => {
  let p
  before(async () => {
    p = await pair('shared')
  })
  after(async () => {
    await closeAll(p?.a, p?.b)
  })

  /** A SharedArrayBuffer itself, and every view kind over one. */
  function sharedCases(seed) {
    const whole = filled(21, SharedArrayBuffer, seed)
    return [
      ['SharedArrayBuffer', whole, Buffer.from(new Uint8Array(whole).slice())],
      ['SharedArrayBuffer (empty)', new SharedArrayBuffer(0), Buffer.alloc(0)],
      ...viewCases(SharedArrayBuffer, seed + 1).map(([what, value, bytes]) => [`${what} over a SharedArrayBuffer`, value, bytes]),
    ]
  }

  test('dc.send(sharedArrayBuffer) and views over one send the bytes, copied at the call', async () => {
    const rx = collect(p.dcB)
    try {
      await assertDelivered(sharedCases(0), (v) => p.dcA.send(v), rx, 'send()')
      // copied at send() time: memory written right after the call does not change the message
      rx.messages.length = 0
      const sab = filled(8, SharedArrayBuffer, 50)
      const before = Buffer.from(new Uint8Array(sab).slice())
      p.dcA.send(sab)
      new Uint8Array(sab).fill(0)
      await rx.waitFor(1, 5000)
      assert.deepEqual([...rx.messages[0]], [...before])
    } finally {
      rx.stop()
    }
  })

  test('ipc.request(method, opts, sharedArrayBuffer) sends the bytes raw, as for an ArrayBuffer', async () => {
    const rx = collect(p.dcB)
    try {
      const send = (v) => withTimeout(ipc.request('dc.send', { pcId: p.idA, dcLabel: 'shared', isBinary: true }, v), 5000, 'dc.send')
      await assertDelivered(sharedCases(200), send, rx, 'ipc.request()')
    } finally {
      rx.stop()
    }
  })

  test('inside a msgpack payload a SharedArrayBuffer is bin, as an ArrayBuffer is', async () => {
    // pion-ipc reads a bin where it expects a string: the pcId given as bytes names the peer
    const bytes = (text, Buf) => {
      const buf = new Buf(Buffer.byteLength(text))
      new Uint8Array(buf).set(Buffer.from(text))
      return buf
    }
    for (const [Buf, id] of [
      [ArrayBuffer, 'careless-nested-ab'],
      [SharedArrayBuffer, 'careless-nested-sab'],
    ]) {
      await withTimeout(ipc.request('pc.create', {}, { pcId: bytes(id, Buf), iceServers: [] }), 5000, `pc.create with a ${Buf.name} pcId`)
      // the peer exists under that name: closing it succeeds (an unknown one is refused)
      await withTimeout(ipc.request('pc.close', { pcId: id }), 5000, `pc.close ${id}`)
      await assert.rejects(ipc.request('pc.close', { pcId: id }), new RegExp(`peer "${id}" not found`))
    }
  })
})

describe(`labels: at most ${LABEL_LIMIT} bytes of UTF-8`, () => {
  let p
  before(async () => {
    p = await pair('labels')
  })
  after(async () => {
    await closeAll(p?.a, p?.b)
  })

  /** Creates `label` on A; resolves once both ends are open and a message went each way. */
  async function opensBothSides(label, what) {
    const announced = nextEvent(p.b, 'datachannel', 15000)
    const dcA = p.a.createDataChannel(label)
    const [{ channel: dcB }] = await announced.catch((e) => {
      throw new Error(`${what}: the remote never got the channel: ${e.message}`)
    })
    assert.equal(dcB.label, label, `${what}: the remote has the exact label`)
    assert.equal(dcA.label, label)
    if (dcA.readyState !== 'open') await nextEvent(dcA, 'open', 15000)
    if (dcB.readyState !== 'open') await nextEvent(dcB, 'open', 15000)
    const rxB = collect(dcB)
    const rxA = collect(dcA)
    dcA.send('to-b')
    dcB.send('to-a')
    await rxB.waitFor(1, 5000)
    await rxA.waitFor(1, 5000)
    assert.deepEqual(rxB.messages, ['to-b'])
    assert.deepEqual(rxA.messages, ['to-a'])
    await withTimeout(dcA.close(), 10000, 'close')
    return dcB
  }

  test(`a label of exactly ${LABEL_LIMIT} bytes reaches the remote, ASCII and multi-byte`, async () => {
    const ascii = 'L'.repeat(LABEL_LIMIT)
    // 4-, 3-, 2- and 1-byte characters: 2,048 code points, 4,091 UTF-16 units
    const multi = '😀'.repeat(2043) + '✓' + 'é' + 'x'.repeat(3)
    assert.equal(Buffer.byteLength(multi), LABEL_LIMIT)
    await opensBothSides(ascii, 'ASCII')
    await opensBothSides(multi, 'multi-byte')
  })

  test(`one byte over ${LABEL_LIMIT} throws a TypeError at createDataChannel and leaves no channel behind`, async () => {
    const announced = []
    const onChannel = ({ channel }) => announced.push(channel.label)
    p.b.on('datachannel', onChannel)
    const logged = logLines.length
    try {
      const over = [
        ['ASCII', 'L'.repeat(LABEL_LIMIT + 1)],
        // fewer characters than the limit, more bytes: bytes are what counts
        ['multi-byte', '😀'.repeat(2045) + 'x'],
        ['2-byte', 'é'.repeat(LABEL_LIMIT / 2) + 'x'],
        ['65535 bytes', 'L'.repeat(65535)],
        ['65536 bytes', 'L'.repeat(65536)],
        ['1 MB', 'L'.repeat(1 << 20)],
      ]
      for (const [what, label] of over) {
        const bytes = Buffer.byteLength(label)
        assert.ok(bytes > LABEL_LIMIT && label.length >= 1)
        let threw = null
        try {
          const dc = p.a.createDataChannel(label)
          dc.on('error', () => {})
        } catch (e) {
          threw = e
        }
        assert.ok(threw, `${what} (${bytes} bytes, ${label.length} UTF-16 units): expected a synchronous throw`)
        assert.ok(threw instanceof TypeError, `${what}: a TypeError, got ${threw?.constructor?.name}: ${threw?.message}`)
        assert.match(threw.message, new RegExp(`at most ${LABEL_LIMIT} bytes`), `${what}: the message names the limit`)
        assert.match(threw.message, new RegExp(`\\b${bytes}\\b`), `${what}: the message gives the label's size`)
        // nothing on the sidecar either: it knows no channel of that label on A (asked where
        // the label fits in a frame header)
        if (bytes < 60000) await assert.rejects(
          withTimeout(ipc.request('dc.send', { pcId: p.idA, dcLabel: label }, Buffer.from('x')), 5000, 'dc.send'),
          /not found/,
          `${what}: no channel of that label on the sidecar`,
        )
      }
      // the connection still works: a normal channel opens on both sides
      await opensBothSides('after-long', 'a normal label afterwards')
      await sleep(200)
      assert.deepEqual(announced, ['after-long'], 'the remote saw only the normal channel')
      assert.ok(!logLines.slice(logged).some((l) => l.includes('Failed to accept data channel')), 'the sidecar refused nothing')
      assert.equal(p.a.connectionState, 'connected')
    } finally {
      p.b.off('datachannel', onChannel)
    }
  })

  test(`the limit is the sidecar's: ${LABEL_LIMIT + 1} bytes sent raw are refused by the remote (short buffer)`, async () => {
    // straight through the protocol, past the check: the remote pion cannot read the channel's
    // announcement, and the channel exists on one side only (this is what the check prevents)
    const announced = []
    const onChannel = ({ channel }) => announced.push(channel.label)
    p.b.on('datachannel', onChannel)
    const logged = logLines.length
    const label = 'R'.repeat(LABEL_LIMIT + 1)
    try {
      await withTimeout(ipc.request('dc.create', { pcId: p.idA }, { label, ordered: true }), 5000, 'raw dc.create')
      await until(() => logLines.slice(logged).some((l) => l.includes('Failed to accept data channel: short buffer')), 10000, "the remote's 'short buffer'")
      await sleep(200)
      assert.deepEqual(announced, [], 'the remote never got it')
      await withTimeout(ipc.request('dc.close', { pcId: p.idA, dcLabel: label }), 5000, 'raw dc.close')
    } finally {
      p.b.off('datachannel', onChannel)
    }
  })
})
