// RTCPeerConnection / RTCDataChannel against the real sidecar: two connections on one
// PionIpc, talking to each other over the veth pair of scripts/netns-run.sh.
// Run: scripts/netns-run.sh node --test --test-concurrency=1 __test__/webrtc.test.mjs
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import { PionIpc, RTCPeerConnection, RTCDataChannel, PeerConnection, DataChannel } from '../index.mjs'
import { withTimeout, nextEvent, until, sleep } from './helpers/util.mjs'

const CONNECT_MS = 15000

/** A promise that never becomes an unhandled rejection while nobody awaits it yet. */
function quiet(promise) {
  promise.catch(() => {})
  return promise
}

function deferred() {
  let resolve
  const promise = new Promise((r) => (resolve = r))
  return { promise, resolve }
}

/** Closes connections, bounded, ignoring their errors. */
async function closeAll(...pcs) {
  await Promise.all(
    pcs.filter(Boolean).map((pc) => withTimeout(pc.close(), 10000, 'pc.close()').catch(() => {}))
  )
}

/** Every message of `dc`, as the `data` of each event, in arrival order. */
function collect(dc) {
  const messages = []
  dc.on('message', (e) => messages.push(e.data))
  return {
    messages,
    waitFor: (n, ms = 10000) => until(() => messages.length >= n, ms, `${n} messages on ${dc.label} (have ${messages.length})`),
  }
}

/**
 * Two connections on `ipc` with trickle ICE, a channel made on A, offer/answer; resolves once
 * A's channel and B's announced channel are both 'open'. `onCreate(a, b)` runs before anything
 * is negotiated (to attach listeners). A candidate is handed over once the receiving side has
 * its remote description (before that the sidecar refuses it).
 */
async function connectPair(ipc, { label = 'chan', ordered, onCreate } = {}) {
  const a = new RTCPeerConnection({ _ipc: ipc })
  const b = new RTCPeerConnection({ _ipc: ipc })
  try {
    const aRemote = deferred()
    const bRemote = deferred()
    const iceErrors = []
    a.onicecandidate = (e) => {
      bRemote.promise.then(() => b.addIceCandidate(e.candidate)).catch((err) => iceErrors.push(err))
    }
    b.onicecandidate = (e) => {
      aRemote.promise.then(() => a.addIceCandidate(e.candidate)).catch((err) => iceErrors.push(err))
    }
    onCreate?.(a, b)
    const dcA = a.createDataChannel(label, ordered === undefined ? undefined : { ordered })
    const aOpen = quiet(
      nextEvent(dcA, 'open', CONNECT_MS).catch((e) => {
        throw new Error(`connectPair(${label}): A's channel never opened (readyState ${dcA.readyState}, A ${a.connectionState}): ${e.message}`)
      })
    )
    const bChannel = quiet(
      nextEvent(b, 'datachannel', CONNECT_MS)
        .catch((e) => {
          throw new Error(`connectPair(${label}): no 'datachannel' on B (B ${b.connectionState}): ${e.message}`)
        })
        .then(async ([e]) => {
          const ch = e.channel
          if (ch.readyState !== 'open') {
            await nextEvent(ch, 'open', CONNECT_MS).catch((err) => {
              throw new Error(`connectPair(${label}): B's channel never opened (readyState ${ch.readyState}): ${err.message}`)
            })
          }
          return ch
        })
    )
    const offer = await a.createOffer()
    await a.setLocalDescription(offer)
    await b.setRemoteDescription(offer)
    bRemote.resolve()
    const answer = await b.createAnswer()
    await b.setLocalDescription(answer)
    await a.setRemoteDescription(answer)
    aRemote.resolve()
    const [, dcB] = await withTimeout(Promise.all([aOpen, bChannel]), CONNECT_MS, 'both channels open')
    assert.equal(dcA.readyState, 'open')
    assert.equal(dcB.readyState, 'open')
    return { a, b, dcA, dcB, iceErrors }
  } catch (err) {
    await closeAll(a, b)
    throw err
  }
}

function newIpc() {
  return new PionIpc({ logger: () => {} })
}

// ---------------------------------------------------------------------------------------------

describe('RTCPeerConnection: surface, options and errors', () => {
  let ipc
  before(async () => {
    ipc = newIpc()
    await ipc.start()
  })
  after(async () => {
    await ipc?.stop()
  })

  test('exports, initial getters, createOffer, createDataChannel defaults', async () => {
    assert.equal(PeerConnection, RTCPeerConnection)
    assert.equal(DataChannel, RTCDataChannel)
    const pc = new RTCPeerConnection({ _ipc: ipc })
    try {
      assert.ok(pc instanceof EventEmitter)
      assert.ok(ipc instanceof EventEmitter)
      assert.equal(pc.connectionState, 'new')
      assert.equal(pc.iceConnectionState, 'new')
      assert.equal(pc.iceGatheringState, 'new')
      assert.equal(pc.signalingState, 'stable')
      assert.equal(pc.selectedCandidatePair, null)
      assert.equal(pc.maxMessageSize, 65535)

      const dc = pc.createDataChannel('first')
      assert.ok(dc instanceof RTCDataChannel)
      assert.ok(dc instanceof EventEmitter)
      assert.equal(dc.label, 'first')
      assert.equal(dc.ordered, true)
      assert.equal(dc.readyState, 'connecting')
      assert.equal(dc.bufferedAmount, 0)
      assert.equal(dc.bufferedAmountLowThreshold, 0)

      const unordered = pc.createDataChannel('second', { ordered: false })
      assert.equal(unordered.label, 'second')
      assert.equal(unordered.ordered, false)
      assert.equal(unordered.readyState, 'connecting')
      assert.equal(unordered.bufferedAmount, 0)
      assert.equal(unordered.bufferedAmountLowThreshold, 0)

      const explicit = pc.createDataChannel('third', { ordered: true })
      assert.equal(explicit.ordered, true)

      const offer = await withTimeout(pc.createOffer(), 10000, 'createOffer')
      assert.deepEqual(Object.keys(offer).sort(), ['sdp', 'type'])
      assert.equal(offer.type, 'offer')
      assert.equal(typeof offer.sdp, 'string')
      assert.match(offer.sdp, /^v=0\r?\n/)
      assert.match(offer.sdp, /m=application .* webrtc-datachannel/)
      // nothing was negotiated: states unchanged, channels still connecting
      assert.equal(pc.signalingState, 'stable')
      assert.equal(dc.readyState, 'connecting')
    } finally {
      await closeAll(pc)
    }
  })

  test('on<event> properties replace, remove and read back handlers', async () => {
    const pc = new RTCPeerConnection({ _ipc: ipc })
    try {
      const dc = pc.createDataChannel('handlers')
      const cases = [
        [pc, 'datachannel', { channel: dc }],
        [pc, 'icecandidate', { candidate: { candidate: 'x', sdpMid: '0', sdpMLineIndex: 0 } }],
        [pc, 'connectionstatechange'],
        [pc, 'iceconnectionstatechange'],
        [pc, 'icegatheringstatechange'],
        [pc, 'signalingstatechange'],
        [pc, 'selectedcandidatepairchange'],
        [dc, 'message', { data: 'hi' }],
        [dc, 'open'],
        [dc, 'close'],
        [dc, 'bufferedamountlow'],
        [dc, 'error', new Error('boom')],
      ]
      for (const [target, event, ...args] of cases) {
        const prop = `on${event}`
        assert.equal(target[prop], null, `${prop} starts null`)
        const calls = []
        const first = (...a) => calls.push(['first', a])
        const second = (...a) => calls.push(['second', a])
        target[prop] = first
        assert.equal(target[prop], first, `${prop} reads back`)
        assert.equal(target.listenerCount(event), 1)
        target.emit(event, ...args)
        assert.deepEqual(calls, [['first', args]], `${prop}: first handler called`)
        target[prop] = second
        assert.equal(target[prop], second, `${prop} reads back the replacement`)
        assert.equal(target.listenerCount(event), 1, `${prop}: the old handler is removed`)
        target.emit(event, ...args)
        assert.deepEqual(calls, [['first', args], ['second', args]], `${prop}: only the new handler called`)
        // a listener added with on() is independent of the property
        const other = () => calls.push(['other'])
        target.on(event, other)
        target[prop] = null
        assert.equal(target[prop], null, `${prop} null after removal`)
        assert.equal(target.listenerCount(event), 1, `${prop}: null removes only the handler`)
        target.off(event, other)
        assert.equal(target.listenerCount(event), 0)
        if (event !== 'error') {
          target.emit(event, ...args)
          assert.equal(calls.length, 2, `${prop}: no handler called after null`)
        }
      }
    } finally {
      await closeAll(pc)
    }
  })

  test('on<event> handlers get real events from the sidecar', async () => {
    let a, b
    try {
      const seen = { datachannel: [], connectionstatechange: [], icecandidate: [] }
      ;({ a, b } = await connectPair(ipc, {
        label: 'real-handlers',
        onCreate: (pa, pb) => {
          pb.ondatachannel = (e) => seen.datachannel.push(e.channel.label)
          pa.onconnectionstatechange = () => seen.connectionstatechange.push(pa.connectionState)
          const trickle = pa.onicecandidate
          assert.equal(typeof trickle, 'function')
          pa.onicecandidate = (e) => {
            seen.icecandidate.push(e.candidate)
            trickle(e)
          }
        },
      }))
      assert.deepEqual(seen.datachannel, ['real-handlers'])
      assert.ok(seen.connectionstatechange.includes('connected'), `states: ${seen.connectionstatechange}`)
      assert.ok(seen.icecandidate.length > 0)
      for (const c of seen.icecandidate) {
        assert.equal(typeof c.candidate, 'string')
        assert.match(c.candidate, /^candidate:/)
      }

      const dcA = a.createDataChannel('second')
      const [{ channel: dcB }] = await nextEvent(b, 'datachannel', CONNECT_MS)
      if (dcA.readyState !== 'open') await nextEvent(dcA, 'open', CONNECT_MS)
      const got = []
      const opened = []
      dcA.onopen = () => opened.push('late') // already open: never called
      dcB.onmessage = (e) => got.push(['one', e.data])
      dcB.onmessage = (e) => got.push(['two', e.data])
      const closes = []
      dcB.onclose = () => closes.push('b')
      dcA.send('x1')
      await until(() => got.length >= 1, 5000, 'x1')
      dcB.onmessage = null
      const spare = collect(dcB)
      dcA.send('x2')
      await spare.waitFor(1, 5000)
      assert.deepEqual(got, [['two', 'x1']])
      assert.deepEqual(spare.messages, ['x2'])
      await withTimeout(dcA.close(), 10000, 'dcA.close()')
      await until(() => closes.length === 1, 5000, 'onclose on B')
      assert.deepEqual(opened, [])
    } finally {
      await closeAll(a, b)
    }
  })

  test('reused label throws OperationError, empty label TypeError; a closed label is reusable', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'L' }))
      let err = null
      try {
        a.createDataChannel('L')
      } catch (e) {
        err = e
      }
      assert.ok(err, 'reusing a live label throws')
      assert.equal(err.name, 'OperationError')
      // the remote side's channel holds the label on B as well
      assert.throws(() => b.createDataChannel('L'), (e) => e.name === 'OperationError')
      assert.throws(() => a.createDataChannel(''), TypeError)
      // the live channel was not disturbed by the refused attempts
      assert.equal(dcA.readyState, 'open')
      const firstRx = collect(dcB)
      dcA.send('still')
      await firstRx.waitFor(1, 5000)
      assert.deepEqual(firstRx.messages, ['still'])

      const bClosed = quiet(nextEvent(dcB, 'close', 10000))
      await withTimeout(dcA.close(), 10000, 'dcA.close()')
      assert.equal(dcA.readyState, 'closed')
      await bClosed
      assert.equal(dcB.readyState, 'closed')

      const announced = quiet(nextEvent(b, 'datachannel', CONNECT_MS))
      const again = a.createDataChannel('L')
      assert.equal(again.label, 'L')
      assert.equal(again.readyState, 'connecting')
      // fails at once if the new channel closes instead of opening
      const againOpen =
        again.readyState === 'open'
          ? Promise.resolve()
          : quiet(
              Promise.race([
                nextEvent(again, 'open', CONNECT_MS),
                nextEvent(again, 'close', CONNECT_MS).then(() => {
                  throw new Error("the new channel emitted 'close' before 'open'")
                }),
              ]).catch((e) => {
                throw new Error(`reused-label channel on A never opened (readyState ${again.readyState}): ${e.message}`)
              })
            )
      const [{ channel: dcB2 }] = await announced
      assert.equal(dcB2.label, 'L')
      assert.notEqual(dcB2, dcB)
      const rxB = collect(dcB2)
      await againOpen
      assert.equal(again.readyState, 'open')
      if (dcB2.readyState !== 'open') {
        await nextEvent(dcB2, 'open', CONNECT_MS).catch((e) => {
          throw new Error(`reused-label channel on B never opened (readyState ${dcB2.readyState}): ${e.message}`)
        })
      }
      const rxA = collect(again)
      again.send('to-b')
      dcB2.send('to-a')
      await rxB.waitFor(1, 5000)
      await rxA.waitFor(1, 5000)
      assert.deepEqual(rxB.messages, ['to-b'])
      assert.deepEqual(rxA.messages, ['to-a'])
    } finally {
      await closeAll(a, b)
    }
  })

  test('bad settings: sidecar rejection, RangeError before sending, channel fails; no _ipc', async () => {
    const pcs = []
    try {
      // the sidecar refuses it: the constructor still returns
      const tooBig = new RTCPeerConnection({ _ipc: ipc, settings: { sctpRtoMax: 400000 } })
      pcs.push(tooBig)
      const events = []
      const ch = tooBig.createDataChannel('doomed')
      ch.on('error', (e) => events.push(['error', e instanceof Error, e.message]))
      ch.on('close', () => events.push(['close', ch.readyState]))
      await assert.rejects(withTimeout(tooBig.createOffer(), 10000, 'createOffer'), (e) => {
        assert.ok(e instanceof Error)
        assert.match(e.message, /exceeds max 300000 ms/)
        return true
      })
      await assert.rejects(tooBig.createAnswer(), /exceeds max 300000 ms/)
      await assert.rejects(tooBig.getSctpStats(), /exceeds max 300000 ms/)
      await until(() => events.length >= 2, 5000, 'error and close on the channel')
      assert.equal(events[0][0], 'error')
      assert.equal(events[0][1], true)
      assert.match(events[0][2], /exceeds max 300000 ms/)
      assert.deepEqual(events[1], ['close', 'closed'])
      assert.equal(events.length, 2)
      assert.equal(ch.readyState, 'closed')
      assert.equal(ch.bufferedAmount, 0)

      // numbers the sidecar would wrap: RangeError, nothing sent
      for (const value of [-1, 1.5, 2 ** 32 + 5]) {
        const pc = new RTCPeerConnection({ _ipc: ipc, settings: { sctpRtoMax: value } })
        pcs.push(pc)
        const evs = []
        const dc = pc.createDataChannel('r')
        dc.on('error', (e) => evs.push(['error', e]))
        dc.on('close', () => evs.push(['close']))
        await assert.rejects(withTimeout(pc.createOffer(), 10000, 'createOffer'), RangeError, `sctpRtoMax ${value}`)
        await assert.rejects(pc.setRemoteDescription({ type: 'offer', sdp: 'v=0' }), RangeError)
        await until(() => evs.length >= 2, 5000, `error and close (sctpRtoMax ${value})`)
        assert.equal(evs[0][0], 'error')
        assert.ok(evs[0][1] instanceof Error)
        assert.equal(evs[1][0], 'close')
        assert.equal(evs.length, 2)
        assert.equal(dc.readyState, 'closed')
      }

      // a channel without an error listener: no unhandled 'error', just close
      const silent = new RTCPeerConnection({ _ipc: ipc, settings: { sctpRtoMax: -1 } })
      pcs.push(silent)
      const quietCh = silent.createDataChannel('q')
      await nextEvent(quietCh, 'close', 5000)
      assert.equal(quietCh.readyState, 'closed')

      // no _ipc
      for (const options of [{}, undefined, { settings: {} }]) {
        let pc
        assert.doesNotThrow(() => (pc = new RTCPeerConnection(options)))
        pcs.push(pc)
        await assert.rejects(pc.createOffer(), (e) => e instanceof Error && e.message === '_ipc is required')
        await assert.rejects(pc.getSctpStats(), (e) => e.message === '_ipc is required')
        await assert.rejects(pc.addIceCandidate({ candidate: '', sdpMid: '0', sdpMLineIndex: 0 }), (e) => e.message === '_ipc is required')
      }
    } finally {
      await closeAll(...pcs)
    }
  })

  test('getSctpStats: null before connect, numbers after, rejects after close', async () => {
    const lone = new RTCPeerConnection({ _ipc: ipc })
    let a, b
    try {
      assert.equal(await withTimeout(lone.getSctpStats(), 10000, 'getSctpStats'), null)
      let early
      ;({ a, b } = await connectPair(ipc, {
        label: 'stats',
        onCreate: (pa) => {
          early = quiet(pa.getSctpStats())
        },
      }))
      assert.equal(await early, null)
      const stats = await withTimeout(a.getSctpStats(), 10000, 'getSctpStats')
      assert.ok(stats && typeof stats === 'object')
      for (const key of ['bytesSent', 'bytesReceived', 'srttMs', 'congestionWindow', 'receiverWindow', 'mtu']) {
        assert.equal(typeof stats[key], 'number', `${key} is a number`)
        assert.ok(Number.isFinite(stats[key]) && stats[key] >= 0, `${key} = ${stats[key]}`)
      }
      assert.ok(stats.bytesSent > 0)
      assert.ok(stats.bytesReceived > 0)
      assert.ok(stats.mtu > 0)
      const statsB = await withTimeout(b.getSctpStats(), 10000, 'getSctpStats on B')
      assert.equal(typeof statsB.bytesSent, 'number')
      await withTimeout(a.close(), 10000, 'a.close()')
      await assert.rejects(withTimeout(a.getSctpStats(), 10000, 'getSctpStats after close'))
    } finally {
      await closeAll(lone, a, b)
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('RTCPeerConnection: negotiation and lifecycle', () => {
  let ipc
  before(async () => {
    ipc = newIpc()
    await ipc.start()
  })
  after(async () => {
    await ipc?.stop()
  })

  test('connect with trickle ICE: state events, selected pair, datachannel', async () => {
    let a, b
    try {
      const log = { a: {}, b: {} }
      const events = [
        ['connectionstatechange', 'connectionState'],
        ['iceconnectionstatechange', 'iceConnectionState'],
        ['icegatheringstatechange', 'iceGatheringState'],
        ['signalingstatechange', 'signalingState'],
        ['selectedcandidatepairchange', 'selectedCandidatePair'],
      ]
      const args = []
      let announced = null
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, {
        label: 'unordered',
        ordered: false,
        onCreate: (pa, pb) => {
          for (const [name, pc] of [['a', pa], ['b', pb]]) {
            for (const [event, getter] of events) {
              log[name][event] = []
              pc.on(event, (...xs) => {
                args.push(xs.length)
                log[name][event].push(pc[getter])
              })
            }
          }
          pb.on('datachannel', (e) => (announced = e))
        },
      }))
      // 'connected' may be reported by the channel before the connection's own event
      await until(() => a.connectionState === 'connected' && b.connectionState === 'connected', 5000, 'both connected')
      await until(() => a.selectedCandidatePair && b.selectedCandidatePair, 5000, 'selected pairs')
      const msg = JSON.stringify(log)
      assert.ok(args.every((n) => n === 0), 'state events carry no arguments')
      for (const side of ['a', 'b']) {
        const conn = log[side].connectionstatechange
        assert.ok(conn.every((s) => typeof s === 'string' && s !== ''), `${side}: no empty state: ${msg}`)
        const ci = conn.indexOf('connecting')
        const cd = conn.indexOf('connected')
        assert.ok(ci >= 0, `${side}: 'connecting' seen: ${msg}`)
        assert.ok(cd > ci, `${side}: 'connected' after 'connecting': ${msg}`)
        for (let i = 1; i < conn.length; i++) {
          assert.notEqual(conn[i], conn[i - 1], `${side}: each connectionstatechange is a change: ${msg}`)
        }
        assert.equal(new Set(conn).size, conn.length, `${side}: each state once: ${msg}`)
        const ice = log[side].iceconnectionstatechange
        assert.ok(ice.length > 0, `${side}: iceconnectionstatechange fired`)
        assert.ok(ice.every((s) => s !== ''), `${side}: no empty ice state`)
        assert.ok(ice.includes('connected') || ice.includes('completed'), `${side}: ice connected: ${msg}`)
        for (let i = 1; i < ice.length; i++) {
          assert.notEqual(ice[i], ice[i - 1], `${side}: each iceconnectionstatechange is a change: ${msg}`)
        }
        assert.ok(log[side].icegatheringstatechange.length > 0, `${side}: icegatheringstatechange fired`)
        assert.ok(log[side].signalingstatechange.length > 0, `${side}: signalingstatechange fired`)
        assert.ok(log[side].selectedcandidatepairchange.length > 0, `${side}: selectedcandidatepairchange fired`)
      }
      assert.equal(a.connectionState, 'connected')
      assert.equal(b.connectionState, 'connected')
      assert.equal(a.signalingState, 'stable')
      assert.equal(b.signalingState, 'stable')
      assert.equal(a.iceGatheringState, 'complete')
      assert.equal(b.iceGatheringState, 'complete')
      // A went have-local-offer -> stable, B have-remote-offer -> stable
      assert.ok(log.a.signalingstatechange.includes('stable'))
      assert.ok(log.b.signalingstatechange.includes('stable'))

      for (const pc of [a, b]) {
        const pair = pc.selectedCandidatePair
        assert.deepEqual(Object.keys(pair).sort(), ['local', 'remote'])
        for (const end of [pair.local, pair.remote]) {
          assert.equal(typeof end.type, 'string')
          assert.ok(['host', 'srflx', 'prflx', 'relay'].includes(end.type), end.type)
          assert.equal(typeof end.address, 'string')
          assert.match(end.address, /^10\.99\.0\.[12]$/)
          assert.equal(typeof end.port, 'number')
          assert.ok(Number.isInteger(end.port) && end.port > 0 && end.port < 65536)
          assert.equal(end.protocol, 'udp')
        }
      }
      // the two ends agree: A's local port is B's remote port and vice versa
      assert.equal(a.selectedCandidatePair.local.port, b.selectedCandidatePair.remote.port)
      assert.equal(b.selectedCandidatePair.local.port, a.selectedCandidatePair.remote.port)

      assert.ok(announced, 'datachannel event')
      assert.deepEqual(Object.keys(announced), ['channel'])
      assert.equal(announced.channel, dcB)
      assert.ok(dcB instanceof RTCDataChannel)
      assert.equal(dcB.label, 'unordered')
      assert.equal(dcB.ordered, false)
      assert.equal(dcA.ordered, false)
    } finally {
      await closeAll(a, b)
    }
  })

  test('datachannel event carries ordered: true for an ordered channel', async () => {
    let a, b
    try {
      let dcB
      ;({ a, b, dcB } = await connectPair(ipc, { label: 'ordered' }))
      assert.equal(dcB.label, 'ordered')
      assert.equal(dcB.ordered, true)
    } finally {
      await closeAll(a, b)
    }
  })

  test('restartIce: new offer, renegotiation, channel keeps working', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'restart' }))
      const closes = []
      dcA.on('close', () => closes.push('a'))
      dcB.on('close', () => closes.push('b'))
      const rxA = collect(dcA)
      const rxB = collect(dcB)
      const signaling = { a: [], b: [] }
      a.on('signalingstatechange', () => signaling.a.push(a.signalingState))
      b.on('signalingstatechange', () => signaling.b.push(b.signalingState))
      const offer = await withTimeout(a.restartIce(), 10000, 'restartIce')
      assert.deepEqual(Object.keys(offer).sort(), ['sdp', 'type'])
      assert.equal(offer.type, 'offer')
      assert.match(offer.sdp, /^v=0/)
      await a.setLocalDescription(offer)
      await b.setRemoteDescription(offer)
      const answer = await b.createAnswer()
      assert.equal(answer.type, 'answer')
      await b.setLocalDescription(answer)
      await a.setRemoteDescription(answer)
      // the sidecar's signalingstatechange event may trail its answer (PROTOCOL.md, trap 5)
      await until(() => a.signalingState === 'stable' && b.signalingState === 'stable', 5000, 'signaling stable').catch((err) => {
        throw new Error(`${err.message}: A ${a.signalingState}, B ${b.signalingState}; signalingstatechange since restartIce: ${JSON.stringify(signaling)}`)
      })
      await sleep(300)
      assert.equal(dcA.readyState, 'open')
      assert.equal(dcB.readyState, 'open')
      for (let i = 0; i < 20; i++) {
        dcA.send(`a${i}`)
        dcB.send(`b${i}`)
      }
      await rxB.waitFor(20, 10000)
      await rxA.waitFor(20, 10000)
      assert.deepEqual(rxB.messages, Array.from({ length: 20 }, (_, i) => `a${i}`))
      assert.deepEqual(rxA.messages, Array.from({ length: 20 }, (_, i) => `b${i}`))
      // still good a moment later
      await sleep(1000)
      dcA.send('late-a')
      dcB.send('late-b')
      await rxB.waitFor(21, 10000)
      await rxA.waitFor(21, 10000)
      assert.equal(rxB.messages[20], 'late-a')
      assert.equal(rxA.messages[20], 'late-b')
      assert.deepEqual(closes, [])
      assert.equal(a.connectionState, 'connected')
      assert.equal(b.connectionState, 'connected')
    } finally {
      await closeAll(a, b)
    }
  })

  test('pc.close(): channels close once, one connectionstatechange, twice is harmless, stays closed', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'one' }))
      const announced = quiet(nextEvent(b, 'datachannel', CONNECT_MS))
      const dcA2 = a.createDataChannel('two')
      const [{ channel: dcB2 }] = await announced
      if (dcA2.readyState !== 'open') await nextEvent(dcA2, 'open', CONNECT_MS)
      assert.equal(dcB2.label, 'two')

      const counts = { one: 0, two: 0, conn: 0, ice: 0 }
      dcA.on('close', () => counts.one++)
      dcA2.on('close', () => counts.two++)
      const states = []
      a.on('connectionstatechange', () => {
        counts.conn++
        states.push(a.connectionState)
      })
      const bCloses = []
      dcB.on('close', () => bCloses.push('one'))
      dcB2.on('close', () => bCloses.push('two'))

      const first = a.close()
      const second = a.close()
      await withTimeout(Promise.all([first, second]), 10000, 'a.close() twice')
      assert.equal(a.connectionState, 'closed')
      assert.equal(dcA.readyState, 'closed')
      assert.equal(dcA2.readyState, 'closed')
      assert.equal(dcA.bufferedAmount, 0)
      assert.equal(counts.one, 1)
      assert.equal(counts.two, 1)
      assert.equal(counts.conn, 1)
      assert.deepEqual(states, ['closed'])
      await withTimeout(a.close(), 5000, 'a.close() a third time')
      assert.throws(() => dcA.send('x'), (e) => e.message.startsWith('InvalidStateError'))
      assert.throws(() => a.createDataChannel('three'))

      // the far side hears about the channels (remote close), and A never comes back
      await until(() => bCloses.length === 2, 10000, 'remote channels closed on B')
      await sleep(500)
      assert.equal(a.connectionState, 'closed')
      assert.deepEqual(states, ['closed'])
      assert.equal(counts.one, 1)
      assert.equal(counts.two, 1)
      assert.deepEqual(bCloses.sort(), ['one', 'two'])
      await assert.rejects(withTimeout(a.createOffer(), 5000, 'createOffer after close'))
    } finally {
      await closeAll(a, b)
    }
  })

  test('send on a connecting or closed channel throws InvalidStateError', async () => {
    const lone = new RTCPeerConnection({ _ipc: ipc })
    let a, b
    try {
      const pending = lone.createDataChannel('pending')
      assert.equal(pending.readyState, 'connecting')
      const isInvalidState = (e) => e instanceof Error && e.message.startsWith('InvalidStateError')
      assert.throws(() => pending.send('early'), isInvalidState)
      assert.throws(() => pending.send(Buffer.from([1])), isInvalidState)
      assert.equal(pending.bufferedAmount, 0)

      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'closing' }))
      const rx = collect(dcB)
      dcA.send('before')
      const closing = dcA.close()
      // asserted at the end, so the rest is checked either way
      const stateAfterClose = dcA.readyState
      let whileClosing = null
      try {
        dcA.send('while closing')
      } catch (e) {
        whileClosing = e
      }
      await withTimeout(closing, 10000, 'dcA.close()')
      assert.throws(() => dcA.send('after'), isInvalidState)
      assert.throws(() => dcA.send(new Uint8Array(4)), isInvalidState)
      await until(() => dcB.readyState === 'closed', 10000, 'B closed')
      assert.throws(() => dcB.send('after remote close'), isInvalidState)
      assert.equal(stateAfterClose, 'closing', "readyState is 'closing' synchronously after close()")
      assert.ok(whileClosing && isInvalidState(whileClosing), `send() right after close() throws InvalidStateError (got ${whileClosing})`)
      assert.deepEqual(rx.messages, ['before'])
    } finally {
      await closeAll(lone, a, b)
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('RTCDataChannel: data', () => {
  let ipc
  before(async () => {
    ipc = newIpc()
    await ipc.start()
  })
  after(async () => {
    await ipc?.stop()
  })

  test('every data type both ways, exact bytes; binary arrives as Buffer, text as string', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'types' }))
      const big = new ArrayBuffer(32)
      new Uint8Array(big).forEach((_, i, arr) => (arr[i] = i + 100))
      const int16 = new Int16Array([1, -2, 300, -32768, 32767])
      const float64 = new Float64Array([Math.PI, -0, Infinity, 1e-300])
      const dvBuf = new ArrayBuffer(12)
      new Uint8Array(dvBuf).set([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12])
      const abOnly = new Uint8Array([0, 255, 128, 1, 2]).buffer
      // [value to send, expected: string or Buffer]
      const cases = () => [
        ['héllo ✓', 'héllo ✓'],
        ['', ''],
        ['plain ascii', 'plain ascii'],
        [Buffer.from([1, 2, 3, 0, 255]), Buffer.from([1, 2, 3, 0, 255])],
        [new Uint8Array([4, 5, 6]), Buffer.from([4, 5, 6])],
        [new Uint8Array(big, 3, 4), Buffer.from([103, 104, 105, 106])],
        [abOnly, Buffer.from([0, 255, 128, 1, 2])],
        [int16, Buffer.from(int16.buffer)],
        [new Int16Array(big, 4, 2), Buffer.from(big, 4, 4)],
        [float64, Buffer.from(float64.buffer)],
        [new DataView(dvBuf, 2, 5), Buffer.from([7, 6, 5, 4, 3])],
        [Buffer.from(big).subarray(10, 13), Buffer.from([110, 111, 112])],
        [42, '42'],
        [{ a: 1 }, '[object Object]'],
        [true, 'true'],
      ]
      for (const [from, to, label] of [[dcA, dcB, 'A->B'], [dcB, dcA, 'B->A']]) {
        const rx = collect(to)
        const list = cases()
        for (const [value] of list) from.send(value)
        await rx.waitFor(list.length, 10000)
        await sleep(50)
        assert.equal(rx.messages.length, list.length, `${label}: no extra messages`)
        list.forEach(([value, expected], i) => {
          const got = rx.messages[i]
          const what = `${label} #${i} (${Object.prototype.toString.call(value)})`
          if (typeof expected === 'string') {
            assert.equal(typeof got, 'string', `${what}: text arrives as string`)
            assert.equal(got, expected, what)
          } else {
            assert.ok(Buffer.isBuffer(got), `${what}: binary arrives as Buffer`)
            assert.deepEqual([...got], [...expected], what)
          }
        })
        to.removeAllListeners('message')
      }
    } finally {
      await closeAll(a, b)
    }
  })

  test('the bytes are copied at send() time', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'copy' }))
      const rx = collect(dcB)
      const buf = Buffer.from([1, 2, 3, 4])
      dcA.send(buf)
      buf.fill(0)
      await rx.waitFor(1, 5000)
      assert.deepEqual([...rx.messages[0]], [1, 2, 3, 4])
    } finally {
      await closeAll(a, b)
    }
  })

  test('received Buffers stay intact while kept, written to, or their memory transferred away', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'pool' }))
      // sizes around the 4 KiB limit of pooled messages, enough of them to fill many pools
      const sizes = [0, 1, 7, 1024, 4095, 4096, 4097, 16384, 65535]
      const sent = []
      for (let i = 0; i < 600; i++) {
        const m = randomBytes(sizes[i % sizes.length])
        sent.push(m)
      }
      const kept = []
      let transferred = 0
      dcB.on('message', ({ data }) => {
        assert.ok(Buffer.isBuffer(data))
        const i = kept.length
        if (i % 7 === 3 && data.length > 0) {
          // a listener transferring the memory behind its message: small messages share it,
          // so it is copied instead (or refused, in newer Node versions), as Node's own
          // Buffer pool is; a large message's own memory does move.
          const copy = Buffer.from(data)
          try {
            structuredClone(data.buffer, { transfer: [data.buffer] })
          } catch {}
          transferred++
          kept.push(copy)
        } else {
          kept.push(data)
          // a listener scribbling over its own message touches nothing else
          if (i % 5 === 0 && data.length > 0) data.fill(0xee)
        }
      })
      for (const m of sent) dcA.send(m)
      await until(() => kept.length === sent.length, 20000, 'all messages')
      await sleep(50)
      assert.equal(kept.length, sent.length)
      assert.ok(transferred > 50)
      kept.forEach((got, i) => {
        const want = i % 5 === 0 && i % 7 !== 3 ? Buffer.alloc(sent[i].length, 0xee) : sent[i]
        if (!got.equals(want)) assert.fail(`message ${i} (${sent[i].length} bytes) changed after delivery`)
      })
    } finally {
      await closeAll(a, b)
    }
  })

  test('20,000 mixed messages sent in one loop arrive complete and in order', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'flood' }))
      const N = 20000
      const rx = collect(dcB)
      for (let i = 0; i < N; i++) {
        if (i % 2 === 0) {
          dcA.send(`m${i}`)
        } else {
          const bin = Buffer.alloc(4)
          bin.writeUInt32LE(i)
          dcA.send(bin)
        }
      }
      await rx.waitFor(N, 45000)
      await sleep(100)
      assert.equal(rx.messages.length, N)
      for (let i = 0; i < N; i++) {
        const got = rx.messages[i]
        if (i % 2 === 0) {
          if (got !== `m${i}`) assert.fail(`message ${i}: expected m${i}, got ${String(got)}`)
        } else if (!Buffer.isBuffer(got) || got.length !== 4 || got.readUInt32LE(0) !== i) {
          assert.fail(`message ${i}: expected 4-byte ${i}, got ${Buffer.isBuffer(got) ? got.toString('hex') : String(got)}`)
        }
      }
      await until(() => dcA.bufferedAmount === 0, 10000, 'bufferedAmount drains')
    } finally {
      await closeAll(a, b)
    }
  })

  test('65535 bytes arrive intact; 65536 bytes and 65536-byte text throw at send()', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'size' }))
      assert.equal(a.maxMessageSize, 65535)
      const rx = collect(dcB)
      const max = randomBytes(65535)
      dcA.send(max)
      await rx.waitFor(1, 10000)
      assert.ok(Buffer.isBuffer(rx.messages[0]))
      assert.equal(rx.messages[0].length, 65535)
      assert.ok(rx.messages[0].equals(max), '65535 bytes intact')

      const maxText = 'é'.repeat(32767) + 'a' // 65535 bytes of UTF-8
      assert.equal(Buffer.byteLength(maxText), 65535)
      dcA.send(maxText)
      await rx.waitFor(2, 10000)
      assert.equal(rx.messages[1], maxText)

      for (const tooBig of [
        Buffer.alloc(65536, 1),
        new Uint8Array(65536),
        new ArrayBuffer(70000),
        'é'.repeat(32768), // 32768 characters, 65536 bytes of UTF-8
        'x'.repeat(65536),
      ]) {
        const before = dcA.bufferedAmount
        assert.throws(
          () => dcA.send(tooBig),
          (e) => e instanceof Error && /65535|maxMessageSize|too large|exceeds/i.test(e.message),
          `send of ${typeof tooBig === 'string' ? 'text' : 'binary'} (${Buffer.byteLength(typeof tooBig === 'string' ? tooBig : Buffer.from(tooBig instanceof ArrayBuffer ? tooBig : tooBig.buffer))} bytes) throws`
        )
        assert.equal(dcA.bufferedAmount, before, 'not counted in bufferedAmount')
        assert.equal(dcA.readyState, 'open')
      }

      const errors = []
      dcB.on('error', (e) => errors.push(e))
      dcA.send('after')
      dcB.send(Buffer.from('reply'))
      const rxA = collect(dcA)
      await rx.waitFor(3, 5000)
      await rxA.waitFor(1, 5000)
      assert.equal(rx.messages[2], 'after')
      assert.equal(rxA.messages[0].toString(), 'reply')
      assert.equal(rx.messages.length, 3)
      assert.equal(dcB.readyState, 'open')
      assert.deepEqual(errors, [])
    } finally {
      await closeAll(a, b)
    }
  })

  test('bufferedAmount rises with send, drains, bufferedamountlow fires, pacing moves 20 MB', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'flow' }))
      let rxCount = 0
      let rxBytes = 0
      let rxBad = null
      dcB.on('message', ({ data }) => {
        if (!Buffer.isBuffer(data)) rxBad ??= `message ${rxCount} is not binary`
        else if (data[0] !== rxCount % 256 || data[data.length - 1] !== rxCount % 256) rxBad ??= `message ${rxCount} out of order`
        rxCount++
        rxBytes += data.length
      })
      const chunk = (i, size) => Buffer.alloc(size, i % 256)

      // 1. synchronous rise
      assert.equal(dcA.bufferedAmount, 0)
      const K16 = 16 * 1024
      const total = 200 * K16
      for (let i = 0; i < 200; i++) dcA.send(chunk(i, K16))
      const right = dcA.bufferedAmount
      assert.ok(right > 0, `bufferedAmount right after sending: ${right}`)
      // bytes not yet acknowledged plus the sidecar's own SCTP backlog, which can count a
      // few bytes of its own beyond the payloads (seen: 16): never a whole message twice
      assert.ok(right <= total + K16, `bufferedAmount ${right} <= ${total} + ${K16}`)
      await until(() => dcA.bufferedAmount === 0, 30000, 'bufferedAmount drains to 0')
      await until(() => rxCount === 200, 10000, '200 messages received')
      assert.equal(rxBytes, total)
      assert.equal(rxBad, null)

      // 2. low-threshold edge
      const threshold = 64 * 1024
      dcA.bufferedAmountLowThreshold = threshold
      assert.equal(dcA.bufferedAmountLowThreshold, threshold)
      const lows = []
      dcA.on('bufferedamountlow', () => lows.push(dcA.bufferedAmount))
      for (let i = 200; i < 260; i++) dcA.send(chunk(i, K16))
      assert.ok(dcA.bufferedAmount > threshold, `above threshold: ${dcA.bufferedAmount}`)
      await until(() => lows.length > 0, 15000, 'bufferedamountlow')
      // checked at the end, so that the transfer below is verified either way
      const firstLow = lows[0]
      await until(() => rxCount === 260, 15000, '260 messages received')
      dcA.removeAllListeners('bufferedamountlow')

      // 3. pacing loop; every 'bufferedamountlow' is recorded with the amount it saw
      const paced = []
      dcA.on('bufferedamountlow', () => paced.push(dcA.bufferedAmount))
      const size = 65535
      const goal = 20 * 1000 * 1000
      const high = 256 * 1024
      let sent = 0
      let i = 260
      const started = Date.now()
      let maxSeen = 0
      while (sent < goal) {
        while (sent < goal && dcA.bufferedAmount < high) {
          dcA.send(chunk(i++, size))
          sent += size
        }
        maxSeen = Math.max(maxSeen, dcA.bufferedAmount)
        if (sent < goal) await nextEvent(dcA, 'bufferedamountlow', 15000)
        assert.ok(Date.now() - started < 60000, 'pacing loop bounded')
      }
      assert.ok(maxSeen < high + size, `never more than one message over the mark: ${maxSeen}`)
      await until(() => rxCount === i, 30000, `all ${i} messages received (have ${rxCount})`)
      assert.equal(rxBytes, total + 60 * K16 + sent)
      assert.equal(rxBad, null)
      await until(() => dcA.bufferedAmount === 0, 10000, 'drained').catch((err) => {
        throw new Error(`${err.message}: bufferedAmount still ${dcA.bufferedAmount} after all ${rxCount} messages were received`)
      })
      assert.ok(firstLow <= threshold, `bufferedAmount inside the first 'bufferedamountlow' after crossing: ${firstLow} (threshold ${threshold})`)
      const stale = paced.filter((amount) => amount > threshold)
      assert.deepEqual(stale, [], `bufferedAmount above the threshold inside 'bufferedamountlow' (${stale.length} of ${paced.length} events)`)
    } finally {
      await closeAll(a, b)
    }
  })

  test('graceful close loses nothing: 2,000 messages then close()', async () => {
    let a, b
    try {
      let dcA, dcB
      ;({ a, b, dcA, dcB } = await connectPair(ipc, { label: 'graceful' }))
      const N = 2000
      const rx = collect(dcB)
      const closes = { a: 0, b: 0 }
      dcA.on('close', () => closes.a++)
      dcB.on('close', () => closes.b++)
      const errors = []
      dcA.on('error', (e) => errors.push(e.message))
      dcB.on('error', (e) => errors.push(e.message))
      for (let i = 0; i < N; i++) dcA.send(`c${i}`)
      assert.ok(dcA.bufferedAmount > 0)
      const closing = dcA.close()
      const stateAfterClose = dcA.readyState // asserted at the end
      await withTimeout(closing, 10000, 'dcA.close()')
      assert.equal(dcA.readyState, 'closed')
      assert.equal(dcA.bufferedAmount, 0)
      await until(() => closes.a === 1, 2000, "'close' on A")
      await rx.waitFor(N, 15000)
      await until(() => dcB.readyState === 'closed', 10000, "B's channel closed")
      await until(() => closes.b === 1, 2000, "'close' on B")
      await sleep(200)
      assert.equal(rx.messages.length, N)
      for (let i = 0; i < N; i++) {
        if (rx.messages[i] !== `c${i}`) assert.fail(`message ${i}: expected c${i}, got ${rx.messages[i]}`)
      }
      assert.deepEqual(closes, { a: 1, b: 1 })
      assert.deepEqual(errors, [])
      // close() again is a no-op
      await withTimeout(dcA.close(), 2000, 'second close()')
      assert.equal(closes.a, 1)
      // the connection itself is still fine
      assert.equal(a.connectionState, 'connected')
      assert.equal(stateAfterClose, 'closing', "readyState is 'closing' synchronously after close()")
    } finally {
      await closeAll(a, b)
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('many connections on one sidecar', () => {
  let ipc
  before(async () => {
    ipc = newIpc()
    await ipc.start()
  })
  after(async () => {
    await ipc?.stop()
  })

  test('30 pairs at once: connect, one message each way, close', async () => {
    const started = Date.now()
    const results = await withTimeout(
      Promise.allSettled(Array.from({ length: 30 }, (_, i) => connectPair(ipc, { label: `pair${i}` }))),
      60000,
      '30 pairs connect'
    ).catch((err) => {
      throw err
    })
    const pairs = results.filter((r) => r.status === 'fulfilled').map((r) => r.value)
    try {
      const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason?.message)
      assert.deepEqual(failed, [], 'every pair connects')
      assert.equal(pairs.length, 30)
      await withTimeout(
        Promise.all(
          pairs.map(async ({ dcA, dcB }, i) => {
            const toB = quiet(nextEvent(dcB, 'message', 20000))
            const toA = quiet(nextEvent(dcA, 'message', 20000))
            dcA.send(`a->b ${i}`)
            dcB.send(Buffer.from(`b->a ${i}`))
            const [[mb], [ma]] = await Promise.all([toB, toA])
            assert.equal(mb.data, `a->b ${i}`)
            assert.ok(Buffer.isBuffer(ma.data))
            assert.equal(ma.data.toString(), `b->a ${i}`)
          })
        ),
        20000,
        'messages on 30 pairs'
      )
      assert.ok(Date.now() - started < 60000)
    } finally {
      await withTimeout(
        Promise.all(pairs.map(({ a, b }) => closeAll(a, b))),
        20000,
        'closing 30 pairs'
      )
    }
    for (const { a, b, dcA, dcB } of pairs) {
      assert.equal(a.connectionState, 'closed')
      assert.equal(b.connectionState, 'closed')
      assert.equal(dcA.readyState, 'closed')
      assert.equal(dcB.readyState, 'closed')
    }
  })
})
