// The package as people install it: `npm run package` writes the main tarball and this
// platform's binary package; a fresh project installs both (the binary package is not on the
// registry, so it is named explicitly) with the sidecar package, and uses them from child
// processes that see nothing of this checkout (no binPath, no PION_IPC_BIN).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { installedProject, root, rootPkg, run as runIn, sidecarPkg } from './helpers/installed.mjs'

const EXPORTS = ['PionIpc', 'RTCPeerConnection', 'RTCDataChannel', 'PeerConnection', 'DataChannel', 'DataChannelStream', 'createDataChannelStream']

let project
let packed // { main, platform, triple, version }
let cleanup = () => {}

const run = (cmd, args, options = {}) => runIn(cmd, args, { cwd: project, ...options })

/** Runs `file` (written into the project) with node; returns its last stdout line as JSON. */
async function node(file, source, timeout = 20_000) {
  writeFileSync(join(project, file), source)
  const { stdout } = await run(process.execPath, [file], { timeout })
  return JSON.parse(stdout.trim().split('\n').pop())
}

before(
  async () => {
    // May build the addon first (when the sources are newer than it). No registry: the
    // tarballs are local, so this works offline and with an empty npm cache.
    ;({ project, packed, cleanup } = await installedProject('pion-node-rs-packaging-', ['__test__/fixtures/installed-pair.mjs']))
    // The type check uses the checkout's own TypeScript and @types/node (dev dependencies
    // that its `npm install` put there), as a user's project has its own.
    mkdirSync(join(project, 'node_modules', '@types'), { recursive: true })
    symlinkSync(join(root, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'), 'dir')
  },
  { timeout: 420_000 },
)

after(() => cleanup())

test('the main tarball holds the JavaScript and the types, not the binary', async () => {
  const { stdout } = await run('tar', ['tzf', packed.main], { timeout: 10_000 })
  const files = stdout.trim().split('\n').map((f) => f.replace(/^package\//, '')).sort()
  assert.deepEqual(files, [
    'LICENSE',
    'README.md',
    'binding.d.ts',
    'binding.js',
    'index.d.ts',
    'index.js',
    'index.mjs',
    'lib/polyfill/data-channel.js',
    'lib/polyfill/events.js',
    'lib/polyfill/peer-connection.js',
    'lib/polyfill/sidecar.js',
    'lib/polyfill/stats.js',
    'lib/stream.js',
    'package.json',
    'polyfill.d.ts',
    'polyfill.js',
    'polyfill.mjs',
  ])
  const installed = JSON.parse(readFileSync(join(project, 'node_modules', 'pion-node-rs', 'package.json'), 'utf8'))
  assert.equal(installed.optionalDependencies[`pion-node-rs-${packed.triple}`], rootPkg.version)
  assert.ok(!existsSync(join(project, 'node_modules', 'pion-node-rs', `pion-node-rs.${packed.triple}.node`)))
})

test('require() loads the binary from the platform package', { timeout: 30_000 }, async () => {
  const result = await node(
    'load.cjs',
    `const pion = require('pion-node-rs')
const binary = require.resolve('pion-node-rs-${packed.triple}')
const loaded = process.report.getReport().sharedObjects.filter((f) => f.endsWith('.node'))
console.log(JSON.stringify({
  exports: Object.keys(pion).sort(),
  types: ${JSON.stringify(EXPORTS)}.map((name) => typeof pion[name]),
  aliases: pion.PeerConnection === pion.RTCPeerConnection && pion.DataChannel === pion.RTCDataChannel,
  binary, loaded,
}))
`,
  )
  assert.deepEqual(result.exports, [...EXPORTS].sort())
  assert.deepEqual(result.types, EXPORTS.map(() => 'function'))
  assert.equal(result.aliases, true)
  assert.ok(result.binary.startsWith(join(project, 'node_modules', `pion-node-rs-${packed.triple}`)), result.binary)
  assert.deepEqual(result.loaded, [result.binary])
})

test('import loads the same classes', { timeout: 30_000 }, async () => {
  const result = await node(
    'load.mjs',
    `import { createRequire } from 'node:module'
import * as pion from 'pion-node-rs'
import defaultExport from 'pion-node-rs'
const cjs = createRequire(import.meta.url)('pion-node-rs')
const names = ${JSON.stringify(EXPORTS)}
console.log(JSON.stringify({
  named: names.filter((n) => typeof pion[n] === 'function' && pion[n] === cjs[n]),
  default: names.filter((n) => defaultExport[n] === cjs[n]),
}))
`,
  )
  assert.deepEqual(result.named, EXPORTS)
  assert.deepEqual(result.default, EXPORTS)
})

test('without the platform package, the load error names every place it tried', { timeout: 30_000 }, async () => {
  const dir = join(project, 'node_modules', `pion-node-rs-${packed.triple}`)
  renameSync(dir, `${dir}.hidden`)
  try {
    const result = await node(
      'missing.cjs',
      `try {
  require('pion-node-rs')
  console.log(JSON.stringify({ loaded: true }))
} catch (err) {
  const causes = []
  for (let e = err.cause; e; e = e.cause) causes.push(e.message)
  console.log(JSON.stringify({ message: err.message, causes }))
}
`,
    )
    assert.match(result.message ?? '', /Cannot find native binding/)
    const causes = result.causes.join('\n')
    assert.match(causes, new RegExp(`pion-node-rs\\.${packed.triple}\\.node`), causes)
    assert.match(causes, new RegExp(`'pion-node-rs-${packed.triple}'`), causes)
  } finally {
    renameSync(`${dir}.hidden`, dir)
  }
})

test('the package finds the sidecar by itself: start, ping, stop', { timeout: 30_000 }, async () => {
  const result = await node(
    'sidecar.cjs',
    `const { readlinkSync } = require('node:fs')
const { PionIpc } = require('pion-node-rs')
async function main() {
  const ipc = new PionIpc()
  await ipc.start()
  const exe = process.platform === 'linux' ? readlinkSync('/proc/' + ipc.pid + '/exe') : null
  const { header } = await ipc.request('ping')
  await ipc.stop()
  console.log(JSON.stringify({ ok: header.ok, type: header.type, exe, started: ipc.started, pid: ipc.pid }))
}
main().catch((err) => { console.error(err); process.exit(1) })
`,
  )
  assert.equal(result.ok, true)
  assert.equal(result.type, 'res')
  assert.equal(result.started, false)
  assert.equal(result.pid, null)
  if (process.platform === 'linux') {
    assert.ok(result.exe.startsWith(join(project, 'node_modules', ...sidecarPkg.split('/'))), result.exe)
  }
})

test('loopback: two RTCPeerConnections of one PionIpc, a message each way', { timeout: 45_000 }, async () => {
  const result = await node(
    'loopback.mjs',
    `import { PionIpc } from 'pion-node-rs'
import { connectPair, next } from './installed-pair.mjs'

const deadline = setTimeout(() => {
  console.error('loopback: no exchange within 30 s')
  process.exit(2)
}, 30_000)

const ipc = new PionIpc()
await ipc.start()
const { a, b, dcA, dcB } = await connectPair(ipc, 'loop')

const atB = next(dcB, 'message')
dcA.send('hello from a')
const [{ data: toBData }] = await atB
const atA = next(dcA, 'message')
dcB.send(Buffer.from([1, 2, 3]))
const [{ data: toAData }] = await atA

const states = [a.connectionState, b.connectionState]
await a.close()
await b.close()
await ipc.stop()
clearTimeout(deadline)
console.log(JSON.stringify({ toB: toBData, toA: Buffer.isBuffer(toAData) ? [...toAData] : toAData, states, label: dcB.label }))
`,
    40_000,
  )
  assert.deepEqual(result, { toB: 'hello from a', toA: [1, 2, 3], states: ['connected', 'connected'], label: 'loop' })
})

test('tsc --noEmit --strict accepts the public types, from ESM and CommonJS', { timeout: 60_000 }, async () => {
  writeFileSync(
    join(project, 'check.mts'),
    `import { PionIpc, RTCPeerConnection, RTCDataChannel, PeerConnection, DataChannel } from 'pion-node-rs'
import type { IpcResponse, MessageEvent, PionIpcOptions, RTCSessionDescriptionInit } from 'pion-node-rs'

export async function main(): Promise<string> {
  const options: PionIpcOptions = { timeout: 5000, logger: (line: string) => console.log(line) }
  const ipc = new PionIpc(options)
  ipc.on('exit', (code: number | null, signal: string | null) => console.log(code, signal))
  await ipc.start()
  const res: IpcResponse = await ipc.request('ping')
  const pid: number | null = ipc.pid
  const pc: PeerConnection = new RTCPeerConnection({ _ipc: ipc, iceServers: [{ urls: 'stun:127.0.0.1' }] })
  pc.onicecandidate = ({ candidate }) => void pc.addIceCandidate(candidate)
  const dc: DataChannel = pc.createDataChannel('chat', { ordered: true })
  const same: RTCDataChannel = dc
  same.onmessage = (e: MessageEvent) => console.log(typeof e.data === 'string' ? e.data : e.data.byteLength)
  dc.on('open', () => dc.send(Buffer.from('hi')))
  const offer: RTCSessionDescriptionInit = await pc.createOffer()
  await pc.setLocalDescription(offer)
  await pc.close()
  await ipc.stop()
  // @ts-expect-error timeout is a number
  new PionIpc({ timeout: 'soon' })
  return \`\${res.header.type} \${pid} \${dc.readyState}\`
}
`,
  )
  writeFileSync(
    join(project, 'check.cts'),
    `import pion = require('pion-node-rs')

export function make(): pion.RTCPeerConnection {
  const ipc: pion.PionIpc = new pion.PionIpc()
  const state: pion.RTCPeerConnectionState = new pion.PeerConnection({ _ipc: ipc }).connectionState
  console.log(state)
  return new pion.RTCPeerConnection({ _ipc: ipc })
}
`,
  )
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const args = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node']
  await run(process.execPath, [tsc, ...args, 'check.mts', 'check.cts'], { timeout: 50_000 })
})
