// Run as a worker thread by check.mjs: starts a sidecar, connects a pair, floods it and posts
// the sidecar's pid once traffic flows; check.mjs then terminates this worker.
import { parentPort } from 'node:worker_threads'
import { PionIpc, RTCPeerConnection } from 'pion-node-rs'

const ipc = new PionIpc()
await ipc.start()
const a = new RTCPeerConnection({ _ipc: ipc })
const b = new RTCPeerConnection({ _ipc: ipc })
a.on('icecandidate', ({ candidate }) => candidate && b.addIceCandidate(candidate).catch(() => {}))
b.on('icecandidate', ({ candidate }) => candidate && a.addIceCandidate(candidate).catch(() => {}))
const dc = a.createDataChannel('flood')
b.on('datachannel', ({ channel }) => {
  let received = 0
  channel.on('message', ({ data }) => {
    received += data.length
    if (received >= 1 << 20 && received - data.length < 1 << 20) parentPort.postMessage({ pid: ipc.pid })
  })
})
const chunk = new Uint8Array(16384)
const pump = () => {
  while (dc.readyState === 'open' && dc.bufferedAmount < 1 << 20) dc.send(chunk)
}
dc.bufferedAmountLowThreshold = 256 * 1024
dc.on('bufferedamountlow', pump)
dc.on('open', pump)
const offer = await a.createOffer()
await a.setLocalDescription(offer)
await b.setRemoteDescription(offer)
const answer = await b.createAnswer()
await b.setLocalDescription(answer)
await a.setRemoteDescription(answer)
