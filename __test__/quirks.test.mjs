// What the sidecar gets wrong (PROTOCOL.md, traps 5, 8, 9), replayed by the fake sidecar's
// `script` method, and how the W3C classes absorb it (SPEC's "Improve" items).
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { encode } from '@msgpack/msgpack'
import { PionIpc, RTCPeerConnection } from '../index.mjs'
import { fakeSidecars } from './helpers/fake.mjs'
import { until, sleep, withTimeout } from './helpers/util.mjs'

const fakes = fakeSidecars()
let ipc
const logged = []

before(async () => {
  ipc = new PionIpc({ binPath: fakes.bin('echo'), logger: (line) => logged.push(line) })
  await ipc.start()
})
after(async () => {
  await ipc.stop()
  fakes.cleanup()
})

let n = 0
/** A connection (its pc.create answered by the fake) with a recorder of its events. */
async function peer() {
  const pcId = `pc${++n}`
  const pc = new RTCPeerConnection({ _ipc: ipc, _pcId: pcId })
  const seen = []
  for (const name of ['connectionstatechange', 'iceconnectionstatechange', 'datachannel', 'icegatheringstatechange', 'signalingstatechange']) {
    pc.on(name, () => seen.push(`${name}:${name === 'iceconnectionstatechange' ? pc.iceConnectionState : pc.connectionState}`))
  }
  await ipc.request('ping')
  return { pc, pcId, seen }
}

function record(dc) {
  const seen = []
  for (const name of ['open', 'close', 'bufferedamountlow']) dc.on(name, () => seen.push(`${name}:${dc.readyState}`))
  dc.on('message', (e) => seen.push(`message:${dc.readyState}:${typeof e.data === 'string' ? e.data : e.data.toString('hex')}`))
  dc.on('error', (e) => seen.push(`error:${e.message}`))
  return seen
}

/** Replays sidecar events, then waits until the fake has answered a ping after them. */
async function script(...events) {
  await ipc.request('script', {}, {
    events: events.map((e) => ({ ...e, payload: e.payload === undefined ? undefined : (Buffer.isBuffer(e.payload) ? e.payload : encode(e.payload)) })),
  })
  await ipc.request('ping')
  await sleep(20)
}

async function setReply(method, reply) {
  await ipc.request('setReply', {}, { method, ...reply })
}

describe('connection states', () => {
  test('an empty state is never a change; each change fires once', async () => {
    const { pc, pcId, seen } = await peer()
    await script({ event: 'pc.statechange', pcId, payload: { connState: '', iceState: '' } })
    assert.equal(pc.connectionState, 'new')
    assert.deepEqual(seen, [])
    await script(
      { event: 'pc.statechange', pcId, payload: { connState: 'connecting', iceState: 'checking' } },
      { event: 'pc.statechange', pcId, payload: { connState: 'connecting', iceState: 'checking' } },
      { event: 'pc.statechange', pcId, payload: { connState: '', iceState: 'connected' } },
    )
    assert.deepEqual(seen, ['connectionstatechange:connecting', 'iceconnectionstatechange:checking', 'iceconnectionstatechange:connected'])
    await pc.close()
  })

  test("'closed' is final even when the sidecar goes backwards", async () => {
    const { pc, pcId, seen } = await peer()
    await script(
      { event: 'pc.statechange', pcId, payload: { connState: 'closed', iceState: 'closed' } },
      { event: 'pc.statechange', pcId, payload: { connState: 'connected', iceState: 'connected' } },
    )
    assert.equal(pc.connectionState, 'closed')
    assert.deepEqual(seen.filter((s) => s.startsWith('connection')), ['connectionstatechange:closed'])
    await pc.close()
  })

  test('a late step back from connected is ignored', async () => {
    const { pc, pcId, seen } = await peer()
    await script(
      { event: 'pc.statechange', pcId, payload: { connState: '', iceState: 'checking' } },
      { event: 'pc.statechange', pcId, payload: { connState: 'connecting', iceState: 'connected' } },
      { event: 'pc.statechange', pcId, payload: { connState: 'connected', iceState: 'connected' } },
      { event: 'pc.statechange', pcId, payload: { connState: 'connecting', iceState: 'checking' } },
    )
    assert.equal(pc.connectionState, 'connected')
    assert.equal(pc.iceConnectionState, 'connected')
    // real changes still count
    await script({ event: 'pc.statechange', pcId, payload: { connState: 'disconnected', iceState: 'disconnected' } })
    assert.equal(pc.connectionState, 'disconnected')
    await script({ event: 'pc.statechange', pcId, payload: { connState: 'connected', iceState: 'connected' } })
    assert.deepEqual(seen.filter((s) => s.startsWith('connection')), [
      'connectionstatechange:connecting',
      'connectionstatechange:connected',
      'connectionstatechange:disconnected',
      'connectionstatechange:connected',
    ])
    await pc.close()
  })

  test('events after close() are ignored', async () => {
    const { pc, pcId, seen } = await peer()
    await pc.close()
    assert.deepEqual(seen, ['connectionstatechange:closed'])
    await script(
      { event: 'pc.statechange', pcId, payload: { connState: 'connected', iceState: 'connected' } },
      { event: 'pc.datachannel', pcId, dcLabel: 'late', payload: { ordered: true } },
      { event: 'pc.signalingstatechange', pcId, payload: { state: 'have-remote-offer' } },
    )
    assert.equal(pc.connectionState, 'closed')
    assert.equal(pc.signalingState, 'stable')
    assert.deepEqual(seen, ['connectionstatechange:closed'])
  })

  test("'failed' closes the channels, each once", async () => {
    const { pc, pcId } = await peer()
    const dc = pc.createDataChannel('f')
    const dcSeen = record(dc)
    await script({ event: 'dc.open', pcId, dcLabel: 'f' })
    await script(
      { event: 'pc.statechange', pcId, payload: { connState: 'failed', iceState: 'failed' } },
      { event: 'dc.close', pcId, dcLabel: 'f' },
    )
    assert.equal(dc.readyState, 'closed')
    assert.deepEqual(dcSeen, ['open:open', 'close:closed'])
    assert.throws(() => dc.send('x'), (e) => e.message.startsWith('InvalidStateError'))
    await pc.close()
  })
})

describe('channels', () => {
  test('a message before dc.open opens the channel first', async () => {
    const { pc, pcId } = await peer()
    const dc = pc.createDataChannel('early')
    const seen = record(dc)
    await script(
      { event: 'dc.message', pcId, dcLabel: 'early', payload: Buffer.from('first') },
      { event: 'dc.open', pcId, dcLabel: 'early' },
      { event: 'dc.message', pcId, dcLabel: 'early', isBinary: true, payload: Buffer.from([1, 2]) },
    )
    assert.deepEqual(seen, ['open:open', 'message:open:first', 'message:open:0102'])
    await pc.close()
  })

  test('a remote channel: label, ordered, and a reused label replacing the old channel', async () => {
    const { pc, pcId } = await peer()
    const channels = []
    pc.ondatachannel = ({ channel }) => channels.push(channel)
    await script({ event: 'pc.datachannel', pcId, dcLabel: 'r', payload: { ordered: false } })
    assert.equal(channels.length, 1)
    assert.equal(channels[0].label, 'r')
    assert.equal(channels[0].ordered, false)
    assert.equal(channels[0].readyState, 'connecting')
    const firstSeen = record(channels[0])
    await script(
      { event: 'dc.open', pcId, dcLabel: 'r' },
      { event: 'pc.datachannel', pcId, dcLabel: 'r', payload: {} },
      { event: 'dc.open', pcId, dcLabel: 'r' },
    )
    assert.equal(channels.length, 2)
    assert.equal(channels[1].ordered, true)
    assert.deepEqual(firstSeen, ['open:open', 'close:closed'])
    assert.equal(channels[1].readyState, 'open')
    await pc.close()
  })

  test('dc.error carries its text; an empty one is "unknown error"; dc.close closes once', async () => {
    const { pc, pcId } = await peer()
    const dc = pc.createDataChannel('e')
    const seen = record(dc)
    await script(
      { event: 'dc.open', pcId, dcLabel: 'e' },
      { event: 'dc.error', pcId, dcLabel: 'e', payload: Buffer.from('short buffer') },
      { event: 'dc.error', pcId, dcLabel: 'e' },
      { event: 'dc.close', pcId, dcLabel: 'e' },
      { event: 'dc.close', pcId, dcLabel: 'e' },
      { event: 'dc.message', pcId, dcLabel: 'e', payload: Buffer.from('after') },
    )
    assert.deepEqual(seen, ['open:open', 'error:short buffer', 'error:unknown error', 'close:closed'])
    // errors are logged whether or not anyone listens
    assert.ok(logged.includes(`[pion-ipc] data channel "e" of ${pcId}: error: short buffer`), logged.join('\n'))
    await pc.close()
  })

  test("the sidecar's own dc.bufferedamountlow fires only when the refreshed total is low", async () => {
    const { pc, pcId } = await peer()
    const dc = pc.createDataChannel('b')
    const seen = record(dc)
    await script({ event: 'dc.open', pcId, dcLabel: 'b' })
    await setReply('dc.getBA', { payload: encode({ bufferedAmount: 5000 }) })
    await script({ event: 'dc.bufferedamountlow', pcId, dcLabel: 'b' })
    assert.deepEqual(seen, ['open:open'])
    assert.equal(dc.bufferedAmount, 5000)
    await setReply('dc.getBA', { payload: encode({ bufferedAmount: 0 }) })
    await script({ event: 'dc.bufferedamountlow', pcId, dcLabel: 'b' })
    assert.deepEqual(seen, ['open:open', 'bufferedamountlow:open'])
    // a failed refresh fires, as the old SDK did
    await setReply('dc.getBA', { error: 'nope' })
    await script({ event: 'dc.bufferedamountlow', pcId, dcLabel: 'b' })
    assert.deepEqual(seen, ['open:open', 'bufferedamountlow:open', 'bufferedamountlow:open'])
    await dc.close()
    await script({ event: 'dc.bufferedamountlow', pcId, dcLabel: 'b' })
    assert.deepEqual(seen, ['open:open', 'bufferedamountlow:open', 'bufferedamountlow:open', 'close:closed'])
    await setReply('dc.getBA', { payload: encode({ bufferedAmount: 0 }) })
    await pc.close()
  })

  test('bufferedAmount: acknowledged backlog, invalid reports ignored, the low edge', async () => {
    const { pc, pcId } = await peer()
    const dc = pc.createDataChannel('ack')
    const seen = record(dc)
    // what the fake reports as its SCTP backlog, in acknowledgements and when asked
    const backlog = async (ack, asked = ack) => {
      await setReply('dc.send', { payload: encode({ bufferedAmount: ack }) })
      await setReply('dc.getBA', { payload: encode({ bufferedAmount: asked }) })
    }
    await script({ event: 'dc.open', pcId, dcLabel: 'ack' })
    dc.bufferedAmountLowThreshold = 50000
    assert.equal(dc.bufferedAmountLowThreshold, 50000)
    await backlog(100000)
    dc.send(Buffer.alloc(1000))
    assert.ok(dc.bufferedAmount >= 1000)
    await until(() => dc.bufferedAmount === 100000, 2000, 'sidecar backlog reported')
    for (const bad of [-5, Number.NaN, 'x']) {
      await backlog(bad, 100000)
      dc.send('y')
      await sleep(50)
      assert.equal(dc.bufferedAmount, 100000, `report ${bad} ignored`)
    }
    assert.deepEqual(seen, ['open:open'])
    await backlog(10)
    dc.send('z')
    await until(() => seen.length === 2, 2000, 'bufferedamountlow')
    assert.deepEqual(seen, ['open:open', 'bufferedamountlow:open'])
    assert.equal(dc.bufferedAmount, 10)
    // already low: no edge, no event
    dc.send('w')
    await sleep(100)
    assert.deepEqual(seen, ['open:open', 'bufferedamountlow:open'])
    // idle with a backlog: the channel asks until the backlog is gone
    await backlog(60000)
    dc.send('v')
    await until(() => dc.bufferedAmount === 60000, 2000, 'backlog above the threshold')
    await backlog(0)
    await until(() => seen.length === 3, 3000, 'bufferedamountlow from polling')
    assert.deepEqual(seen, ['open:open', 'bufferedamountlow:open', 'bufferedamountlow:open'])
    assert.equal(dc.bufferedAmount, 0)
    await pc.close()
    assert.equal(dc.bufferedAmount, 0)
  })

  test('a failed dc.create: error, then close', async () => {
    const { pc } = await peer()
    await setReply('dc.create', { error: 'label is required' })
    const dc = pc.createDataChannel('bad')
    const seen = record(dc)
    await until(() => seen.length === 2, 2000, 'error and close')
    assert.deepEqual(seen, ['error:label is required', 'close:closed'])
    await setReply('dc.create', {})
    await pc.close()
  })
})

describe('when the sidecar dies', () => {
  // In a child process: a throwing listener ends up as an uncaught exception there.
  test('connections fail, channels close; a throwing listener does not stop the others', async () => {
    const code = `
      import { PionIpc, RTCPeerConnection } from ${JSON.stringify(new URL('../index.mjs', import.meta.url).href)}
      const ipc = new PionIpc({ binPath: ${JSON.stringify(fakes.bin('echo'))}, logger: () => {} })
      await ipc.start()
      const order = []
      process.on('uncaughtException', (e) => order.push('uncaught:' + e.message))
      process.on('unhandledRejection', (e) => order.push('unhandled:' + e))
      const pc = new RTCPeerConnection({ _ipc: ipc, _pcId: 'dying' })
      const a = pc.createDataChannel('a')
      const b = pc.createDataChannel('b')
      await ipc.request('script', {}, { events: [{ event: 'dc.open', pcId: 'dying', dcLabel: 'a' }, { event: 'dc.open', pcId: 'dying', dcLabel: 'b' }] })
      while (a.readyState !== 'open' || b.readyState !== 'open') await new Promise((r) => setTimeout(r, 5))
      a.on('close', () => { order.push('a:' + a.readyState + ':' + a.bufferedAmount); throw new Error('listener boom') })
      b.on('close', () => order.push('b:' + b.readyState))
      pc.on('connectionstatechange', () => order.push('pc:' + pc.connectionState))
      pc.on('iceconnectionstatechange', () => order.push('ice:' + pc.iceConnectionState))
      await ipc.request('setReply', {}, { method: 'pc.createOffer', silent: true })
      const pending = pc.createOffer().then(() => 'resolved', (e) => e.message)
      ipc.on('exit', (c, s) => order.push('exit:' + s))
      a.send('in flight')
      process.kill(ipc.pid, 'SIGKILL')
      order.push('offer:' + await pending)
      await new Promise((r) => setTimeout(r, 100))
      await pc.close()
      order.push('closed:' + pc.connectionState)
      console.log(JSON.stringify(order))
    `
    const { spawnSync } = await import('node:child_process')
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 20000 })
    assert.equal(r.status, 0, r.stderr)
    const order = JSON.parse(r.stdout.trim().split('\n').pop())
    // the request's rejection may come in an earlier batch than the exit: both orders are right
    assert.ok(order.includes('offer:process exited (code=null, signal=SIGKILL)'), JSON.stringify(order))
    assert.ok(order.indexOf('uncaught:listener boom') > order.indexOf('exit:SIGKILL'), JSON.stringify(order))
    assert.deepEqual(
      order.filter((e) => !e.startsWith('offer:') && !e.startsWith('uncaught:')),
      ['a:closed:0', 'b:closed', 'pc:failed', 'ice:failed', 'exit:SIGKILL', 'pc:closed', 'closed:closed'],
    )
  })
})
