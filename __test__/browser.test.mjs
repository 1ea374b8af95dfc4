// A real browser as the remote peer: headless Chromium loads a page from this test's HTTP
// server; its RTCPeerConnection offers, a Node RTCPeerConnection of this package answers
// (HTTP signalling, trickle ICE both ways), then text and binary go both ways and 1 MB goes
// each way with its SHA-256 compared on both sides. The page reports back by HTTP POST; no
// DevTools protocol. Chromium is required (CI installs it): without it this test fails.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { PionIpc, RTCPeerConnection } from '../index.mjs'
import { withTimeout } from './helpers/util.mjs'
import { CHROMIUM, launchChromium, startPageServer } from './helpers/chromium.mjs'

const SIZE = 1 << 20
const TEXT_FROM_NODE = 'hello from node ✓'
const TEXT_FROM_BROWSER = 'hello from chromium ✓'
const binaryFromNode = () => Buffer.from(Array.from({ length: 300 }, (_, i) => (255 - i) & 0xff))
const binaryFromBrowser = () => Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff))

// The page. It never throws silently: every failure is reported as { error }.
const PAGE = `<!doctype html><meta charset="utf-8"><title>pion-node-rs browser peer</title>
<script type="module">
const post = (path, body) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
const log = (line) => post('/log', { line }).catch(() => {})
const fail = (err) => post('/report', { error: String(err && err.stack || err) })
window.addEventListener('error', (e) => fail(e.error || e.message))
window.addEventListener('unhandledrejection', (e) => fail(e.reason))
const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('')
const sha256 = async (bytes) => hex(await crypto.subtle.digest('SHA-256', bytes))
const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error('page: timed out: ' + what)), ms))

async function main() {
  const pc = new RTCPeerConnection()
  pc.onconnectionstatechange = () => log('connectionState ' + pc.connectionState)
  const dc = pc.createDataChannel('browser', { ordered: true })
  dc.binaryType = 'arraybuffer'
  const queue = [], waiting = []
  dc.onmessage = ({ data }) => (waiting.length ? waiting.shift()(data) : queue.push(data))
  const next = () => Promise.race([queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r)), timeout(20000, 'message')])

  let remoteSet = false
  const early = []
  pc.onicecandidate = ({ candidate }) => {
    if (candidate && candidate.candidate) post('/signal', { type: 'candidate', candidate: candidate.toJSON() })
  }
  const opened = new Promise((r) => (dc.onopen = r))
  await pc.setLocalDescription(await pc.createOffer())
  await post('/signal', { type: 'offer', sdp: pc.localDescription.sdp })
  ;(async () => {
    while (pc.signalingState !== 'closed') {
      const res = await fetch('/signal?wait=20000')
      for (const msg of await res.json()) {
        if (msg.type === 'answer') {
          await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp })
          remoteSet = true
          for (const c of early.splice(0)) await pc.addIceCandidate(c)
        } else if (msg.type === 'candidate') {
          if (remoteSet) await pc.addIceCandidate(msg.candidate)
          else early.push(msg.candidate)
        } else if (msg.type === 'bye') return
      }
    }
  })().catch(fail)
  await Promise.race([opened, timeout(20000, 'channel open')])
  log('channel open')

  // small text and binary messages both ways
  dc.send(${JSON.stringify(TEXT_FROM_BROWSER)})
  dc.send(new Uint8Array(300).map((_, i) => (i * 7) & 0xff))
  const text = await next()
  const binary = await next()
  const report = {
    text: { type: typeof text, value: typeof text === 'string' ? text : null },
    binary: { type: binary instanceof ArrayBuffer ? 'ArrayBuffer' : typeof binary, hex: binary instanceof ArrayBuffer ? hex(binary) : null },
  }

  // 1 MB browser → Node, paced on bufferedamountlow
  const out = new Uint8Array(${SIZE})
  for (let i = 0; i < out.length; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536))
  const outSha = await sha256(out)
  dc.bufferedAmountLowThreshold = 256 * 1024
  for (let i = 0; i < out.length; i += 16384) {
    while (dc.bufferedAmount > 1024 * 1024) await Promise.race([new Promise((r) => (dc.onbufferedamountlow = r)), timeout(20000, 'bufferedamountlow')])
    dc.send(out.subarray(i, i + 16384))
  }
  dc.send(JSON.stringify({ type: 'end', size: out.length, sha256: outSha }))
  const verified = JSON.parse(await next())
  report.toNode = { size: out.length, sha256: outSha, nodeSays: verified }

  // 1 MB Node → browser
  const parts = []
  let end
  for (;;) {
    const m = await next()
    if (typeof m === 'string') { end = JSON.parse(m); break }
    parts.push(new Uint8Array(m))
  }
  const got = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { got.set(p, at); at += p.length }
  const gotSha = await sha256(got)
  dc.send(JSON.stringify({ type: 'verified', size: got.length, sha256: gotSha }))
  report.fromNode = { size: got.length, sha256: gotSha, chunks: parts.length, nodeSays: end }
  report.connectionState = pc.connectionState
  await post('/report', report)
}
main().catch(fail)
</script>`

/** The Node peer: answers the browser's offer and runs its side of the exchange. */
function nodePeer(ipc, server, log) {
  const pc = new RTCPeerConnection({ _ipc: ipc })
  const results = {}
  let early = []
  pc.onicecandidate = ({ candidate }) => server.sendToBrowser({ type: 'candidate', candidate })
  pc.onconnectionstatechange = () => log(`node connectionState ${pc.connectionState}`)
  server.on('signal', async (msg) => {
    try {
      if (msg.type === 'offer') {
        await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp })
        for (const c of early) await pc.addIceCandidate(c)
        early = null
        const answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        server.sendToBrowser({ type: 'answer', sdp: answer.sdp })
      } else if (msg.type === 'candidate') {
        if (early) early.push(msg.candidate)
        else await pc.addIceCandidate(msg.candidate)
      }
    } catch (err) {
      server.emit('report', { error: `node side: ${err.stack}` })
    }
  })

  const done = new Promise((resolve, reject) => {
    pc.ondatachannel = ({ channel: dc }) => {
      results.label = dc.label
      const queue = []
      const waiting = []
      // attached at once, before the channel opens
      dc.on('message', ({ data }) => (waiting.length ? waiting.shift()(data) : queue.push(data)))
      const next = () =>
        withTimeout(queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r)), 20000, 'a message from the browser')
      const run = async () => {
        if (dc.readyState !== 'open') await withTimeout(new Promise((r) => dc.once('open', r)), 20000, 'node channel open')
        dc.send(TEXT_FROM_NODE)
        dc.send(binaryFromNode())
        results.text = await next()
        results.binary = await next()

        // 1 MB browser → Node
        const hash = createHash('sha256')
        let size = 0
        let chunks = 0
        let end
        for (;;) {
          const m = await next()
          if (typeof m === 'string') {
            end = JSON.parse(m)
            break
          }
          hash.update(m)
          size += m.length
          chunks++
        }
        results.fromBrowser = { size, chunks, sha256: hash.digest('hex'), browserSays: end }
        dc.send(JSON.stringify({ type: 'verified', size, sha256: results.fromBrowser.sha256 }))

        // 1 MB Node → browser in maxMessageSize chunks, paced on bufferedamountlow
        const data = randomBytes(SIZE)
        const sha256 = createHash('sha256').update(data).digest('hex')
        dc.bufferedAmountLowThreshold = 256 * 1024
        for (let i = 0; i < data.length; i += pc.maxMessageSize) {
          while (dc.bufferedAmount > 1024 * 1024) {
            await withTimeout(new Promise((r) => dc.once('bufferedamountlow', r)), 20000, 'bufferedamountlow')
          }
          dc.send(data.subarray(i, i + pc.maxMessageSize))
        }
        dc.send(JSON.stringify({ type: 'end', size: data.length, sha256 }))
        results.toBrowser = { size: data.length, sha256, browserSays: JSON.parse(await next()) }
        results.selectedCandidatePair = pc.selectedCandidatePair
        return results
      }
      run().then(resolve, reject)
    }
  })
  return { pc, done }
}

test('a headless Chromium peer: text, binary and 1 MB each way with SHA-256 checks', { timeout: 60000 }, async (t) => {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: this test needs Debian's Chromium (apt-get update && apt-get install -y chromium)`,
  )
  const logs = []
  const log = (line) => logs.push(line)
  const ipc = new PionIpc({ logger: log })
  await ipc.start()
  t.after(() => ipc.stop())
  const server = await startPageServer(PAGE)
  t.after(() => new Promise((resolve) => {
    server.close(resolve)
    server.closeAllConnections()
  }))
  server.on('log', ({ line }) => log(`page: ${line}`))
  const report = new Promise((resolve) => server.once('report', resolve))
  const node = nodePeer(ipc, server, log)
  t.after(() => node.pc.close())

  const chromium = await launchChromium(server.url)
  t.after(() => chromium.stop())
  const { exited, spawnError } = chromium

  const diagnostics = () => `\n--- log\n${logs.join('\n')}\n--- chromium stderr (tail)\n${chromium.stderr().slice(-3000)}`
  const died = exited.then(({ code, signal }) => {
    throw new Error(`chromium exited early (${code ?? signal})`)
  })
  let page, mine
  try {
    ;[page, mine] = await withTimeout(
      Promise.race([Promise.all([report, node.done]), died, spawnError]),
      45000,
      'the browser report and the Node side',
    )
  } catch (err) {
    err.message += diagnostics()
    throw err
  }
  assert.equal(page.error, undefined, `the page failed: ${page.error}${diagnostics()}`)

  // text and binary, browser → Node
  assert.equal(mine.label, 'browser')
  assert.equal(mine.text, TEXT_FROM_BROWSER)
  assert.ok(Buffer.isBuffer(mine.binary), 'binary from the browser arrives as a Buffer')
  assert.deepEqual(mine.binary, binaryFromBrowser())
  // text and binary, Node → browser
  assert.deepEqual(page.text, { type: 'string', value: TEXT_FROM_NODE })
  assert.deepEqual(page.binary, { type: 'ArrayBuffer', hex: binaryFromNode().toString('hex') })

  // 1 MB browser → Node: the digest Node computed equals the browser's, and the browser saw Node's
  assert.equal(mine.fromBrowser.size, SIZE)
  assert.deepEqual(mine.fromBrowser.browserSays, { type: 'end', size: SIZE, sha256: page.toNode.sha256 })
  assert.equal(mine.fromBrowser.sha256, page.toNode.sha256)
  assert.deepEqual(page.toNode.nodeSays, { type: 'verified', size: SIZE, sha256: page.toNode.sha256 })
  // 1 MB Node → browser
  assert.equal(page.fromNode.size, SIZE)
  assert.equal(page.fromNode.chunks, Math.ceil(SIZE / 65535))
  assert.equal(page.fromNode.sha256, mine.toBrowser.sha256)
  assert.deepEqual(page.fromNode.nodeSays, { type: 'end', size: SIZE, sha256: mine.toBrowser.sha256 })
  assert.deepEqual(mine.toBrowser.browserSays, { type: 'verified', size: SIZE, sha256: mine.toBrowser.sha256 })

  assert.equal(page.connectionState, 'connected')
  assert.match(mine.selectedCandidatePair.local.address, /^10\.99\.0\.[12]$/)
})
