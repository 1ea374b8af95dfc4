'use strict'

// PeerJS 1.5.5 (the client), unchanged, over the test's PeerServer. PeerJS 1.5.5 has no
// option for a WebRTC implementation: it uses the globals RTCPeerConnection and
// RTCSessionDescription (and reads them once, when it is loaded, for `util.supports`), so the
// polyfill's installGlobals() comes first; Node 20 has no global WebSocket, so `ws` is put
// there. Two peers in this process connect through the server and move data both ways.
// argv: the server's port.

const polyfill = require('pion-node-rs/polyfill')
polyfill.installGlobals()
globalThis.WebSocket ??= require('ws')
const { Peer, util } = require('peerjs')
const { report, sidecars, fail } = require('./report.cjs')

process.on('uncaughtException', fail('uncaughtException'))
process.on('unhandledRejection', fail('unhandledRejection'))

const port = Number(process.argv[2])
// secure: false, or PeerJS reads `location.protocol`; no ICE servers: PeerJS's defaults
// (Google's STUN, its TURN servers) cannot be reached offline.
const options = { host: '127.0.0.1', port, path: '/', key: 'peerjs', secure: false, config: { iceServers: [] } }
report('supports', { supports: util.supports })

const alpha = new Peer('alpha', options)
const beta = new Peer('beta', options)
alpha.on('error', fail('alpha error'))
beta.on('error', fail('beta error'))

const atBeta = []
beta.on('connection', (conn) => {
  conn.on('error', fail('beta conn error'))
  conn.on('data', (d) => {
    atBeta.push(show(d))
    if (atBeta.length === 2) {
      conn.send('text from beta')
      conn.send({ json: true, bytes: new Uint8Array([7, 6, 5]) })
    }
  })
})

const show = (d) =>
  d instanceof ArrayBuffer ? { type: 'ArrayBuffer', bytes: [...new Uint8Array(d)] }
  : d?.bytes instanceof ArrayBuffer ? { type: 'object', json: d.json, bytes: [...new Uint8Array(d.bytes)] }
  : { type: typeof d, value: d }

let opened = 0
let pc = null
const atAlpha = []
function start() {
  if (++opened < 2) return
  const conn = alpha.connect('beta', { reliable: true })
  conn.on('error', fail('alpha conn error'))
  conn.on('open', () => {
    pc = conn.peerConnection
    report('open', { sidecars: sidecars(), serialization: conn.serialization })
    conn.send('text from alpha')
    conn.send(new Uint8Array([1, 2, 3, 255]))
  })
  conn.on('data', (d) => {
    atAlpha.push(show(d))
    if (atAlpha.length < 2) return
    report('data', { atAlpha, atBeta })
    alpha.destroy()
    beta.destroy()
  })
}
alpha.on('open', start)
beta.on('open', start)

// Once Node has nothing left to run.
process.on('exit', () => {
  report('exit', { destroyed: [alpha.destroyed, beta.destroyed], state: pc?.connectionState ?? null })
})
