// One trystero peer (the package unchanged, its nostr strategy) in its own process, with
// `rtcPolyfill` from pion-node-rs/polyfill, over the test's nostr relay on 127.0.0.1.
// trystero keeps one selfId per module instance, so each peer needs its own process.
// argv: relay URL, room id, this peer's name. It sends a text and a binary message to the
// first peer that joins, waits for the same from it, acknowledges, and leaves.
import { createRequire } from 'node:module'
import { RTCPeerConnection } from 'pion-node-rs/polyfill'
import WebSocket from 'ws'

const require = createRequire(import.meta.url)
const { report, sidecars, fail } = require('./report.cjs')

// Node 20 has no global WebSocket; trystero's relay client calls `new WebSocket(url)`.
globalThis.WebSocket ??= WebSocket
const { joinRoom, getRelaySockets, pauseRelayReconnection, selfId } = await import('trystero')

const [url, roomId, name] = process.argv.slice(2)
process.on('uncaughtException', fail('uncaughtException'))
process.on('unhandledRejection', fail('unhandledRejection'))

const room = joinRoom(
  {
    appId: 'pion-node-rs-consumers',
    relayConfig: { urls: [url] },
    rtcPolyfill: RTCPeerConnection,
    // trystero's default STUN servers cannot be reached offline; host candidates suffice.
    rtcConfig: { iceServers: [] },
    // A connection is kept for 123 s after leave() for other rooms with the same peer
    // (trystero's shared peers); its own knob for that, so that leave() ends it at once.
    _test_only_sharedPeerIdleMs: 0,
  },
  roomId,
  { onJoinError: fail('onJoinError') },
)
report('joined', { name, selfId })

const text = room.makeAction('text')
const bytes = room.makeAction('bytes')
const ack = room.makeAction('ack')
const got = { text: null, bytes: null }
let other = null
let pc = null // trystero's connection to the other peer
let acked = false
let left = false

room.onPeerJoin = (peerId) => {
  if (other !== null) return
  other = peerId
  pc = room.getPeers()[peerId] ?? null
  report('peer', { name, peerId, sidecars: sidecars() })
  text.send(`hello from ${name}`, { target: peerId }).catch(fail('text.send'))
  bytes.send(new Uint8Array([name.length, 1, 2, 255]), { target: peerId }).catch(fail('bytes.send'))
}
text.onMessage = (data, { peerId }) => {
  got.text = { data, peerId }
  maybeAck()
}
bytes.onMessage = (data, { peerId }) => {
  got.bytes = { data: [...new Uint8Array(data)], type: Object.prototype.toString.call(data), peerId }
  maybeAck()
}
ack.onMessage = () => {
  acked = true
  maybeLeave()
}
// The other peer may leave before its acknowledgement arrives here.
room.onPeerLeave = (peerId) => {
  if (peerId === other) {
    acked = true
    maybeLeave()
  }
}

function maybeAck() {
  if (got.text === null || got.bytes === null) return
  // It fails only when the other peer has left already, which onPeerLeave handles.
  ack.send('', { target: other }).catch(() => {})
  maybeLeave()
}

async function maybeLeave() {
  if (left || !acked || got.text === null || got.bytes === null) return
  left = true
  report('received', { name, ...got })
  // Once Node has nothing left to run: the state of trystero's connection to the other peer.
  process.on('exit', () => report('exit', { name, state: pc?.connectionState ?? null }))
  await room.leave()
  report('left', { name })
  // trystero keeps its relay sockets open after leave() (for the next room) and reconnects
  // a closed one; with reconnection paused, closing them leaves nothing of trystero's.
  pauseRelayReconnection()
  for (const socket of Object.values(getRelaySockets())) socket.close()
}
