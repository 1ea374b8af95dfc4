// Connecting two RTCPeerConnections of one PionIpc, as an application would.
import { RTCPeerConnection } from '../../index.mjs'
import { withTimeout } from './util.mjs'

/** Trickle ICE from `from` to `to`, holding back candidates until `to` has its remote
 * description; call the returned function once it has. */
export function trickle(from, to) {
  let early = []
  from.on('icecandidate', ({ candidate }) => {
    if (early) early.push(candidate)
    else to.addIceCandidate(candidate).catch(() => {})
  })
  return () => {
    for (const candidate of early) to.addIceCandidate(candidate).catch(() => {})
    early = null
  }
}

/** Two connected peers with an open channel each way: { a, b, dcA, dcB }. B runs on `ipcB`
 * when given (its own sidecar), else on `ipc` too. `Peer` is the RTCPeerConnection class
 * (the benchmark passes another SDK's); `settings` goes to both connections; `pcIdA` is A's
 * `_pcId`, `pcOptionsA` more options of A's. */
export async function connectPair(
  ipc,
  { label = 'chat', ordered = true, ms = 20000, ipcB = ipc, Peer = RTCPeerConnection, settings, pcIdA, pcOptionsA } = {},
) {
  const a = new Peer({ _ipc: ipc, settings, _pcId: pcIdA, ...pcOptionsA })
  const b = new Peer({ _ipc: ipcB, settings })
  const toB = trickle(a, b)
  const toA = trickle(b, a)
  const dcA = a.createDataChannel(label, { ordered })
  const remote = new Promise((resolve) => b.once('datachannel', ({ channel }) => resolve(channel)))
  const opened = new Promise((resolve) => dcA.once('open', resolve))
  const offer = await a.createOffer()
  await a.setLocalDescription(offer)
  await b.setRemoteDescription(offer)
  toB()
  const answer = await b.createAnswer()
  await b.setLocalDescription(answer)
  await a.setRemoteDescription(answer)
  toA()
  const dcB = await withTimeout(remote, ms, 'datachannel on B')
  await withTimeout(opened, ms, 'channel open on A')
  if (dcB.readyState !== 'open') await withTimeout(new Promise((r) => dcB.once('open', r)), ms, 'channel open on B')
  return { a, b, dcA, dcB }
}
