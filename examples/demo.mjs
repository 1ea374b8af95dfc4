// Two RTCPeerConnections in one process (one pion-ipc sidecar): connect, talk, close.
//   npm run demo
import { PionIpc, RTCPeerConnection } from '../index.mjs'

const t0 = Date.now()
const at = () => `${String(Date.now() - t0).padStart(5)} ms`

const ipc = new PionIpc({ logger: () => {} })
await ipc.start()
console.log(`${at()}  sidecar pion-ipc started (pid ${ipc.pid})`)

const alice = new RTCPeerConnection({ _ipc: ipc })
const bob = new RTCPeerConnection({ _ipc: ipc })
// Trickle ICE: hand each candidate to the other side (no signalling server needed), holding
// back those that come before the other side has its remote description.
function trickle(from, to) {
  let early = []
  from.onicecandidate = ({ candidate }) => (early ? early.push(candidate) : to.addIceCandidate(candidate))
  return () => {
    for (const candidate of early) to.addIceCandidate(candidate)
    early = null
  }
}
const bobMayAdd = trickle(alice, bob)
const aliceMayAdd = trickle(bob, alice)
alice.onconnectionstatechange = () => console.log(`${at()}  alice: ${alice.connectionState}`)

const connectStart = performance.now()
const chat = alice.createDataChannel('chat')
const bobChannel = new Promise((resolve) => {
  bob.ondatachannel = ({ channel }) => resolve(channel)
})

const offer = await alice.createOffer()
await alice.setLocalDescription(offer)
await bob.setRemoteDescription(offer)
bobMayAdd()
const answer = await bob.createAnswer()
await bob.setLocalDescription(answer)
await alice.setRemoteDescription(answer)
aliceMayAdd()

await new Promise((resolve) => (chat.onopen = resolve))
const remote = await bobChannel
const connectMs = (performance.now() - connectStart).toFixed(1)
// the sidecar may report the selected pair just after the channel opened
const pair =
  alice.selectedCandidatePair ??
  (await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 5000)
    alice.once('selectedcandidatepairchange', () => {
      clearTimeout(timer)
      resolve(alice.selectedCandidatePair)
    })
  }))
const route = pair ? `${pair.local.address}:${pair.local.port} ↔ ${pair.remote.address}:${pair.remote.port}` : 'route not reported'
console.log(`${at()}  channel "${chat.label}" open (${route}), connected in ${connectMs} ms`)

const received = new Promise((resolve) => {
  const got = []
  remote.onmessage = ({ data }) => {
    got.push(data)
    if (typeof data === 'string') console.log(`${at()}  bob got text: ${JSON.stringify(data)}`)
    else console.log(`${at()}  bob got ${data.length} binary bytes: ${data.subarray(0, 8).toString('hex')}…`)
    if (got.length === 2) resolve()
  }
})
const reply = new Promise((resolve) => {
  chat.onmessage = ({ data }) => {
    console.log(`${at()}  alice got reply: ${JSON.stringify(data)}`)
    resolve()
  }
})
chat.send('hello from alice')
chat.send(new Uint8Array(4096).map((_, i) => i & 0xff))
await received
remote.send('hi alice, bob here')
await reply

await alice.close()
await bob.close()
await ipc.stop()
console.log(`${at()}  closed everything; bye`)
