// Real consumers of pion-node-rs/polyfill, unchanged (exact-pinned devDependencies):
// simple-peer, PeerJS with its server, trystero over a local nostr relay. Each runs in child
// processes (under helpers/consumers/) that must exit by themselves once the consumer has
// closed its connections, and whose sidecars must be gone by then.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { child, dir, exitsByItself, living, nostrRelay } from './helpers/consumers.mjs'

const CONNECT_MS = 30000
const EXIT_MS = 15000

/** Asserts a child exited by itself with status 0 and that its sidecars are gone. */
async function cleanExit(c, sidecarPids) {
  const { code, signal } = await exitsByItself(c, EXIT_MS)
  assert.equal(signal, null, c.stderr)
  assert.equal(code, 0, c.stderr)
  assert.ok(sidecarPids.length > 0, 'the child reported its sidecar')
  assert.deepEqual(living(sidecarPids), [], 'its sidecars have exited with it')
}

test('simple-peer 9.11.1 with wrtc: the polyfill: two peers in one process, text and binary both ways, destroy, and the process exits by itself', { timeout: 60000 }, async () => {
  const c = child(`${dir}simple-peer.cjs`)
  try {
    const connected = await c.next('connected', CONNECT_MS)
    assert.equal(connected.remote.length, 2)
    assert.ok(connected.remote.every((address) => typeof address === 'string' && address.length > 0), JSON.stringify(connected.remote))
    const { atA, atB } = await c.next('data', 10000)
    // simple-peer hands every message out as a Buffer.
    assert.deepEqual(atB, [
      { type: 'Buffer', text: 'text from a', bytes: [...Buffer.from('text from a')] },
      { type: 'Buffer', text: Buffer.from([0, 1, 2, 253, 254, 255]).toString(), bytes: [0, 1, 2, 253, 254, 255] },
    ])
    assert.deepEqual(atA, [
      { type: 'Buffer', text: 'text from b', bytes: [...Buffer.from('text from b')] },
      { type: 'Buffer', text: Buffer.from([9, 8, 7]).toString(), bytes: [9, 8, 7] },
    ])
    await cleanExit(c, connected.sidecars)
    const exit = c.events.find((m) => m.event === 'exit')
    assert.deepEqual(exit, {
      event: 'exit',
      closes: 2,
      destroyed: [true, true],
      states: [['closed', 'closed'], ['closed', 'closed']],
    })
  } finally {
    c.kill()
  }
})

test('PeerJS 1.5.5 over PeerServer (peer 1.0.2) on 127.0.0.1: two peers connect through the server and move data both ways', { timeout: 60000 }, async () => {
  const server = child(`${dir}peer-server.cjs`)
  let client = null
  try {
    const { port } = await server.next('listening', 10000)
    client = child(`${dir}peerjs.cjs`, [String(port)])
    const { supports } = await client.next('supports', 10000)
    assert.deepEqual(supports, { browser: false, webRTC: true, audioVideo: true, data: true, binaryBlob: true, reliable: true })
    const open = await client.next('open', CONNECT_MS)
    assert.equal(open.serialization, 'binary', "PeerJS's default serialization (binarypack)")
    const { atAlpha, atBeta } = await client.next('data', 10000)
    assert.deepEqual(atBeta, [
      { type: 'string', value: 'text from alpha' },
      { type: 'ArrayBuffer', bytes: [1, 2, 3, 255] },
    ])
    assert.deepEqual(atAlpha, [
      { type: 'string', value: 'text from beta' },
      { type: 'object', json: true, bytes: [7, 6, 5] },
    ])
    await cleanExit(client, open.sidecars)
    const exit = client.events.find((m) => m.event === 'exit')
    assert.deepEqual(exit, { event: 'exit', destroyed: [true, true], state: 'closed' })
    // Both peers were the server's clients.
    const ids = server.events.filter((m) => m.event === 'client').map((m) => m.id).sort()
    assert.deepEqual(ids, ['alpha', 'beta'])
  } finally {
    client?.kill()
    server.kill()
    await exitsByItself(server, 5000).catch(() => {})
  }
})

test('trystero 0.25.4 (nostr strategy) with rtcPolyfill over a local nostr relay: two peers join a room and exchange data both ways', { timeout: 90000 }, async () => {
  const relay = await nostrRelay()
  const room = `room-${process.pid}-${Date.now()}`
  const ann = child(`${dir}trystero-peer.mjs`, [relay.url, room, 'ann'])
  const bob = child(`${dir}trystero-peer.mjs`, [relay.url, room, 'bob'])
  try {
    const [joinedAnn, joinedBob] = await Promise.all([ann.next('joined', 10000), bob.next('joined', 10000)])
    const [peerAnn, peerBob] = await Promise.all([ann.next('peer', CONNECT_MS), bob.next('peer', CONNECT_MS)])
    assert.equal(peerAnn.peerId, joinedBob.selfId)
    assert.equal(peerBob.peerId, joinedAnn.selfId)
    const [gotAnn, gotBob] = await Promise.all([ann.next('received', 15000), bob.next('received', 15000)])
    assert.deepEqual(gotAnn.text, { data: 'hello from bob', peerId: joinedBob.selfId })
    assert.deepEqual(gotBob.text, { data: 'hello from ann', peerId: joinedAnn.selfId })
    // trystero hands binary data out as a Uint8Array.
    assert.deepEqual(gotAnn.bytes, { data: [3, 1, 2, 255], type: '[object Uint8Array]', peerId: joinedBob.selfId })
    assert.deepEqual(gotBob.bytes, { data: [3, 1, 2, 255], type: '[object Uint8Array]', peerId: joinedAnn.selfId })
    await Promise.all([ann.next('left', 10000), bob.next('left', 10000)])
    await cleanExit(ann, peerAnn.sidecars)
    await cleanExit(bob, peerBob.sidecars)
    for (const c of [ann, bob]) {
      const exit = c.events.find((m) => m.event === 'exit')
      assert.equal(exit.state, 'closed', JSON.stringify(exit))
    }
    assert.ok(relay.counts.EVENT > 0 && relay.counts.forwarded > 0, JSON.stringify(relay.counts))
  } finally {
    ann.kill()
    bob.kill()
    await relay.close()
  }
})
