// Connect times (issue 15): for each case BENCH_CONNECTS (default 50) connects one after the
// other, p50 / p95 / max, from the offering connection's construction to both channel ends
// open (the answering side says so over the channel, or by HTTP for the browser):
//   one sidecar     two connections of one PionIpc, candidates handed over as emitted
//                   (queued until the remote description is set: __test__/helpers/webrtc.mjs)
//   two processes   an offerer here and an answerer in a child process, each with its own
//                   sidecar, HTTP signalling (examples/signaling-*.mjs, trickle ICE)
//   chromium answers / chromium offers   headless Chromium (real-IP host candidates) as the
//                   other peer, HTTP signalling with trickle ICE both ways
// Run inside the test network namespace: `scripts/netns-run.sh node benches/connect.mjs`
// (part of `npm run bench`). Prints a table and writes target/connect.json.
import { fork } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { PionIpc, RTCPeerConnection } from '../index.mjs'
import { connectPair } from '../__test__/helpers/webrtc.mjs'
import { launchChromium, startPageServer } from '../__test__/helpers/chromium.mjs'
import { withTimeout } from '../__test__/helpers/util.mjs'
import { pct } from './stats.mjs'
import { Signaling, connectPeer } from '../examples/signaling-client.mjs'
import { startSignalingServer } from '../examples/signaling-server.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const N = Math.max(1, Number(process.env.BENCH_CONNECTS ?? 50))
const ONE_CONNECT_MS = 20000

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b)
  return { n: sorted.length, p50_ms: pct(sorted, 0.5), p95_ms: pct(sorted, 0.95), max_ms: sorted.at(-1), min_ms: sorted[0] }
}

async function oneSidecar() {
  const ipc = new PionIpc({ logger: () => {} })
  await ipc.start()
  const samples = []
  try {
    for (let i = 0; i < N; i++) {
      const t0 = performance.now()
      const { a, b } = await withTimeout(connectPair(ipc, { label: `c${i}` }), ONE_CONNECT_MS, 'connectPair')
      samples.push(performance.now() - t0)
      await a.close()
      await b.close()
    }
  } finally {
    await ipc.stop()
  }
  return samples
}

async function twoProcesses() {
  const server = await startSignalingServer()
  const child = fork(join(root, 'benches', 'connect-answerer.mjs'), [server.url, String(N)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const ipc = new PionIpc({ logger: () => {} })
  await ipc.start()
  const samples = []
  try {
    await withTimeout(new Promise((resolve) => child.once('message', resolve)), 15000, 'the answerer starting')
    for (let i = 0; i < N; i++) {
      const signaling = new Signaling(server.url, { room: `c${i}`, me: 'offer', peer: 'answer' })
      let said
      const answererOpen = new Promise((resolve) => (said = resolve))
      const t0 = performance.now()
      const { pc } = await connectPeer({ ipc, signaling, role: 'offer', label: `c${i}`, ms: ONE_CONNECT_MS, onMessage: () => said() })
      await withTimeout(answererOpen, ONE_CONNECT_MS, "the answerer's open")
      samples.push(performance.now() - t0)
      await pc.close()
      await signaling.close()
    }
  } finally {
    await ipc.stop()
    child.kill('SIGTERM')
    await server.close()
  }
  return samples
}

// The browser's side: connections on command, numbered; every step reported by POST.
const PAGE = `<!doctype html><meta charset="utf-8"><title>connect bench peer</title>
<script type="module">
const post = (path, body) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
const fail = (err) => post('/failed', { error: String(err && err.stack || err) })
window.addEventListener('unhandledrejection', (e) => fail(e.reason))
const peers = new Map()
// candidates that came before their connection's offer (the offerer trickles at once)
const before = new Map()
function peer(id) {
  const pc = new RTCPeerConnection()
  const entry = { pc, early: before.get(id) ?? [], remote: false }
  before.delete(id)
  peers.set(id, entry)
  pc.onicecandidate = ({ candidate }) => {
    if (candidate && candidate.candidate) post('/signal', { id, type: 'candidate', candidate: candidate.toJSON() })
  }
  return entry
}
async function remote(entry, description) {
  await entry.pc.setRemoteDescription(description)
  entry.remote = true
  for (const c of entry.early.splice(0)) await entry.pc.addIceCandidate(c)
}
async function handle(msg) {
  const { id } = msg
  if (msg.type === 'offer') {
    const entry = peer(id)
    entry.pc.ondatachannel = ({ channel }) => {
      const opened = () => post('/signal', { id, type: 'open' })
      if (channel.readyState === 'open') opened()
      else channel.onopen = opened
    }
    await remote(entry, { type: 'offer', sdp: msg.sdp })
    await entry.pc.setLocalDescription(await entry.pc.createAnswer())
    await post('/signal', { id, type: 'answer', sdp: entry.pc.localDescription.sdp })
  } else if (msg.type === 'make-offer') {
    const t0 = performance.now()
    const entry = peer(id)
    const dc = entry.pc.createDataChannel('c' + id)
    const open = new Promise((r) => (dc.onopen = r))
    const nodeOpen = new Promise((r) => (dc.onmessage = r))
    await entry.pc.setLocalDescription(await entry.pc.createOffer())
    await post('/signal', { id, type: 'offer', sdp: entry.pc.localDescription.sdp })
    await Promise.all([open, nodeOpen])
    await post('/signal', { id, type: 'connected', ms: performance.now() - t0 })
  } else if (msg.type === 'answer') {
    await remote(peers.get(id), { type: 'answer', sdp: msg.sdp })
  } else if (msg.type === 'candidate') {
    const entry = peers.get(id)
    if (!entry) before.set(id, [...(before.get(id) ?? []), msg.candidate])
    else if (entry.remote) await entry.pc.addIceCandidate(msg.candidate)
    else entry.early.push(msg.candidate)
  } else if (msg.type === 'close') {
    peers.get(id)?.pc.close()
    peers.delete(id)
  }
}
post('/signal', { type: 'ready' })
for (;;) {
  const res = await fetch('/signal?wait=20000')
  for (const msg of await res.json()) handle(msg).catch(fail)
}
</script>`

/** One Node connection to the browser's `id`: candidates out at once, remote ones queued. */
function browserPeer(server, id, ipc) {
  const pc = new RTCPeerConnection({ _ipc: ipc })
  let early = []
  pc.on('icecandidate', ({ candidate }) => {
    if (candidate) server.sendToBrowser({ id, type: 'candidate', candidate })
  })
  return {
    pc,
    candidate(candidate) {
      if (early) early.push(candidate)
      else pc.addIceCandidate(candidate).catch(() => {})
    },
    async remote(description) {
      await pc.setRemoteDescription(description)
      for (const c of early) pc.addIceCandidate(c).catch(() => {})
      early = null
    },
  }
}

async function withChromium(run) {
  const server = await startPageServer(PAGE)
  const ready = new Promise((resolve) => server.once('signal', resolve))
  const chromium = await launchChromium(server.url)
  const ipc = new PionIpc({ logger: () => {} })
  await ipc.start()
  try {
    let failure
    const failed = new Promise((_, reject) => (failure = reject))
    server.on('failed', ({ error }) => failure(new Error(`the page failed: ${error}`)))
    chromium.exited.then(({ code, signal }) => failure(new Error(`chromium exited (${code ?? signal})`)))
    await withTimeout(Promise.race([ready, failed, chromium.spawnError]), 20000, 'the page')
    return await run(server, ipc, failed)
  } finally {
    await ipc.stop()
    await chromium.stop()
    await new Promise((resolve) => {
      server.close(resolve)
      server.closeAllConnections()
    })
  }
}

/** Messages for connection `id` from the page, one at a time, by type. */
function pageMessages(server) {
  const handlers = new Map()
  server.on('signal', (msg) => handlers.get(msg.id)?.(msg))
  return (id, handler) => {
    handlers.set(id, handler)
    return () => handlers.delete(id)
  }
}

function chromiumAnswers() {
  return withChromium(async (server, ipc, failed) => {
    const on = pageMessages(server)
    const samples = []
    for (let id = 0; id < N; id++) {
      const t0 = performance.now()
      const node = browserPeer(server, id, ipc)
      const dc = node.pc.createDataChannel(`c${id}`)
      let browserOpen
      const opened = new Promise((resolve) => (browserOpen = resolve))
      const off = on(id, (msg) => {
        if (msg.type === 'answer') node.remote({ type: 'answer', sdp: msg.sdp }).catch(() => {})
        else if (msg.type === 'candidate') node.candidate(msg.candidate)
        else if (msg.type === 'open') browserOpen()
      })
      const offer = await node.pc.createOffer()
      await node.pc.setLocalDescription(offer)
      server.sendToBrowser({ id, type: 'offer', sdp: offer.sdp })
      const nodeOpen = new Promise((resolve) => dc.once('open', resolve))
      await withTimeout(Promise.race([Promise.all([nodeOpen, opened]), failed]), ONE_CONNECT_MS, `connect ${id}`)
      samples.push(performance.now() - t0)
      off()
      server.sendToBrowser({ id, type: 'close' })
      await node.pc.close()
    }
    return samples
  })
}

function chromiumOffers() {
  return withChromium(async (server, ipc, failed) => {
    const on = pageMessages(server)
    const samples = []
    for (let id = 0; id < N; id++) {
      const node = browserPeer(server, id, ipc)
      let connected
      const done = new Promise((resolve) => (connected = resolve))
      node.pc.on('datachannel', ({ channel }) => {
        const opened = () => channel.send('open')
        if (channel.readyState === 'open') opened()
        else channel.once('open', opened)
      })
      const off = on(id, (msg) => {
        if (msg.type === 'offer') {
          node
            .remote({ type: 'offer', sdp: msg.sdp })
            .then(async () => {
              const answer = await node.pc.createAnswer()
              await node.pc.setLocalDescription(answer)
              server.sendToBrowser({ id, type: 'answer', sdp: answer.sdp })
            })
            .catch(() => {})
        } else if (msg.type === 'candidate') node.candidate(msg.candidate)
        else if (msg.type === 'connected') connected(msg.ms)
      })
      server.sendToBrowser({ id, type: 'make-offer' })
      // measured by the page, from before its createOffer() to both ends open
      samples.push(await withTimeout(Promise.race([done, failed]), ONE_CONNECT_MS, `connect ${id}`))
      off()
      server.sendToBrowser({ id, type: 'close' })
      await node.pc.close()
    }
    return samples
  })
}

const CASES = [
  ['one sidecar', oneSidecar],
  ['two processes', twoProcesses],
  ['chromium answers', chromiumAnswers],
  ['chromium offers', chromiumOffers],
]
const only = process.env.BENCH_CONNECT_ONLY?.split(',').map((s) => s.trim())
const results = {}
for (const [name, run] of CASES) {
  if (only && !only.includes(name)) continue
  process.stdout.write(`connect: ${name} x${N} ... `)
  try {
    results[name] = stats(await run())
    console.log('done')
  } catch (err) {
    results[name] = { error: String(err.message) }
    console.log(`FAILED: ${err.message}`)
  }
}

console.log(`\nconnect, ${N} in a row each: from the offering connection's construction to both channel ends open`)
console.log('case               p50 ms   p95 ms   max ms   min ms')
for (const [name, r] of Object.entries(results)) {
  const f = (v) => (v === undefined ? '-' : v.toFixed(1)).padStart(8)
  console.log(r.error ? `${name.padEnd(17)} FAILED: ${r.error}` : `${name.padEnd(17)}${f(r.p50_ms)} ${f(r.p95_ms)} ${f(r.max_ms)} ${f(r.min_ms)}`)
}
mkdirSync(join(root, 'target'), { recursive: true })
writeFileSync(join(root, 'target', 'connect.json'), JSON.stringify({ connects: N, results }, null, 2))
process.exitCode = Object.values(results).some((r) => r.error) ? 1 : 0
