// Run by matrix.mjs under each runtime, from a project that installed the tarballs. Prints one
// JSON line of what it saw; the runtime must then exit by itself (nothing is left running).
import { Worker } from 'node:worker_threads'
import { PionIpc } from 'pion-node-rs'
import { connectPair, next } from './installed-pair.mjs'
import { alive, threads, waitGone } from './util.mjs'

const deadline = setTimeout(() => {
  console.error('check: not done within 40 s')
  process.exit(2)
}, 40_000)
const bytes = (data) => (typeof data === 'string' ? data : [...new Uint8Array(data.buffer, data.byteOffset, data.byteLength)])

const result = {}
const ipc = new PionIpc()
await ipc.start()
// Thread names tell which stdout reader runs; without /proc (macOS, Windows) they are unknown.
const names = [...threads().values()]
result.reader = names.includes('pion-ipc-reader') ? 'thread' : names.includes('pion-ipc-watchd') ? 'loop' : names.length ? 'none' : 'unknown'

// Loopback: text and binary, both ways.
const { a, b, dcA, dcB } = await connectPair(ipc, 'runtime')
const received = { a: [], b: [] }
const gotB = new Promise((resolve) =>
  dcB.on('message', ({ data }) => received.b.push(bytes(data)) === 2 && resolve()),
)
const gotA = new Promise((resolve) =>
  dcA.on('message', ({ data }) => received.a.push(bytes(data)) === 2 && resolve()),
)
dcA.send('text a→b')
dcA.send(new Uint8Array([1, 2, 3]))
dcB.send('text b→a')
dcB.send(Buffer.from([250, 0, 7]))
await Promise.all([gotA, gotB])
result.received = received
await a.close()
await b.close()

// A crash of the sidecar is reported as `exit`.
const pid = ipc.pid
const exited = next(ipc, 'exit')
process.kill(pid, 'SIGKILL')
const [code, signal] = await exited
result.crash = { code, signal }

// A worker thread terminated mid-traffic: its sidecar is gone afterwards, the host goes on.
const worker = new Worker(new URL('./worker.mjs', import.meta.url))
const workerPid = await new Promise((resolve, reject) => {
  worker.once('message', ({ pid }) => resolve(pid))
  worker.once('error', reject)
})
const flowing = alive(workerPid)
await worker.terminate()
result.worker = { flowing, sidecarGone: await waitGone(workerPid, 3000) }

// stop(); then nothing may keep the runtime alive.
await ipc.stop()
result.stopped = ipc.started === false && ipc.pid === null
clearTimeout(deadline)
console.log(JSON.stringify(result))
