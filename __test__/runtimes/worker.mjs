// Run as a worker thread by check.mjs: starts a sidecar, connects a pair, floods it and posts
// the sidecar's pid once traffic flows; check.mjs then terminates this worker.
import { parentPort } from 'node:worker_threads'
import { PionIpc } from 'pion-node-rs'
import { connectPair } from './installed-pair.mjs'

const ipc = new PionIpc()
await ipc.start()
const { dcA, dcB } = await connectPair(ipc, 'flood')
let received = 0
dcB.on('message', ({ data }) => {
  received += data.length
  if (received >= 1 << 20 && received - data.length < 1 << 20) parentPort.postMessage({ pid: ipc.pid })
})
const chunk = new Uint8Array(16384)
const pump = () => {
  while (dcA.readyState === 'open' && dcA.bufferedAmount < 1 << 20) dcA.send(chunk)
}
dcA.bufferedAmountLowThreshold = 256 * 1024
dcA.on('bufferedamountlow', pump)
pump()
