'use strict'

// simple-peer 9.11.1, unchanged, with `wrtc: require('pion-node-rs/polyfill')`: two peers in
// this process, each one's 'signal' events passed straight to the other. Text and binary
// data both ways, then destroy(); the test checks that this process then exits by itself and
// that its sidecar is gone.

const Peer = require('simple-peer')
const wrtc = require('pion-node-rs/polyfill')
const { report, sidecars, fail } = require('./report.cjs')

process.on('uncaughtException', fail('uncaughtException'))

// simple-peer's default configuration lists public STUN servers, which cannot be reached
// offline; pion then gathers for about 10 s, and a connection closed meanwhile holds the
// sidecar (so the process) that long. Host candidates suffice here.
const config = { iceServers: [] }
const a = new Peer({ initiator: true, wrtc, config })
const b = new Peer({ wrtc, config })
a.on('signal', (data) => b.signal(data))
b.on('signal', (data) => a.signal(data))
a.on('error', fail('a error'))
b.on('error', fail('b error'))

const atA = []
const atB = []
let connected = 0
let pcs = []

function onConnect() {
  if (++connected < 2) return
  pcs = [a._pc, b._pc] // simple-peer's RTCPeerConnections, to read their state after destroy
  report('connected', { sidecars: sidecars(), remote: [a.remoteAddress, b.remoteAddress] })
  a.send('text from a')
  a.send(Buffer.from([0, 1, 2, 253, 254, 255]))
  b.send('text from b')
  b.send(new Uint8Array([9, 8, 7]))
}
a.on('connect', onConnect)
b.on('connect', onConnect)

const show = (d) => ({ type: Buffer.isBuffer(d) ? 'Buffer' : typeof d, text: d.toString(), bytes: [...d] })
a.on('data', (d) => {
  atA.push(show(d))
  maybeDone()
})
b.on('data', (d) => {
  atB.push(show(d))
  maybeDone()
})

let closes = 0
a.on('close', () => closes++)
b.on('close', () => closes++)

function maybeDone() {
  if (atA.length < 2 || atB.length < 2) return
  report('data', { atA, atB })
  a.destroy()
  b.destroy()
}

// Once Node has nothing left to run: simple-peer's own iceComplete timer (5 s from the first
// candidate; destroy() does not clear it) is the last thing it waits for.
process.on('exit', () => {
  report('exit', { closes, destroyed: [a.destroyed, b.destroyed], states: pcs.map((pc) => [pc.connectionState, pc.signalingState]) })
})
