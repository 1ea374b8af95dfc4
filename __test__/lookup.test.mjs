// Finding the sidecar binary (SPEC "Finding the sidecar binary"). Every case runs in a child
// Node process with its own environment, so nothing leaks between cases.

import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '..')
const PKG = '@coclaw/pion-ipc-linux-x64'
const REAL_BIN = path.join(repo, 'node_modules', PKG, 'bin', 'pion-ipc')
const FAKE = path.join(here, 'fixtures', 'fake-sidecar.mjs')
/** Copies the repo's file `f` to the same relative path under `dir`. */
function copyInto(f, dir) {
  fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true })
  fs.copyFileSync(path.join(repo, f), path.join(dir, f))
}
const LIB_FILES = ['index.js', 'index.mjs', 'binding.js', 'pion-node-rs.linux-x64-gnu.node', 'lib/stream.js']

let tmp
let script // the child program
let isolatedLib // a copy of the library with no node_modules anywhere above it
let pathDir // a directory holding a `pion-ipc` symlink to the real binary
let fakeEcho // a wrapper running the fake sidecar in echo mode
let trustedBase // in the checkout, whose folders the package check trusts (os.tmpdir() is world-writable)

// The child: loads the library from argv[2], runs one start()/ping/stop() cycle with the
// options in argv[3] (JSON), prints one JSON line with the outcome.
const CHILD = `
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const libDir = process.argv[2]
const options = JSON.parse(process.argv[3] || '{}')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
let resolvable = null
try {
  resolvable = require.resolve('${PKG}/package.json', { paths: [libDir] })
} catch {}
const { PionIpc } = require(path.join(libDir, 'index.js'))
const logs = []
const ipc = new PionIpc({ ...options, logger: (l) => logs.push(l) })
const limit = setTimeout(() => {
  out({ ok: false, error: 'child timed out', logs })
  process.exit(3)
}, 10000)
;(async () => {
  try {
    await ipc.start()
    const pid = ipc.pid
    const exe = fs.readlinkSync('/proc/' + pid + '/exe')
    const res = await ipc.request('ping')
    await ipc.stop()
    out({ ok: true, pid, exe, pingOk: res.header.ok === true, started: ipc.started, resolvable, logs })
  } catch (err) {
    out({ ok: false, error: String(err && err.message), name: err && err.name, started: ipc.started, resolvable, logs })
    await ipc.stop()
  }
  clearTimeout(limit)
})()
`

before(() => {
  assert.ok(fs.existsSync(REAL_BIN), `the real sidecar is installed at ${REAL_BIN}`)
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pion-lookup-'))
  script = path.join(tmp, 'child.cjs')
  fs.writeFileSync(script, CHILD)

  isolatedLib = path.join(tmp, 'lib')
  fs.mkdirSync(isolatedLib)
  for (const f of LIB_FILES) copyInto(f, isolatedLib)

  pathDir = path.join(tmp, 'pathbin')
  fs.mkdirSync(pathDir)
  fs.symlinkSync(REAL_BIN, path.join(pathDir, 'pion-ipc'))

  fakeEcho = path.join(tmp, 'fake-echo.sh')
  fs.writeFileSync(fakeEcho, `#!/bin/sh\nexec "${process.execPath}" "${FAKE}" echo\n`)
  fs.chmodSync(fakeEcho, 0o755)

  fs.mkdirSync(path.join(repo, 'target'), { recursive: true })
  trustedBase = fs.mkdtempSync(path.join(repo, 'target', 'lookup-trust-'))
  fs.chmodSync(trustedBase, 0o755)
})

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
  if (trustedBase) fs.rmSync(trustedBase, { recursive: true, force: true })
})

// A PATH without any pion-ipc on it.
const BARE_PATH = '/usr/bin:/bin'

function baseEnv(extra) {
  const env = {
    PATH: BARE_PATH,
    HOME: tmp, // no ~/.node_modules
    NODE_PATH: '',
    ...extra,
  }
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k]
  return env
}

function runChild({ lib = repo, options = {}, env = {} } = {}) {
  const r = spawnSync(process.execPath, [script, lib, JSON.stringify(options)], {
    env: baseEnv(env),
    encoding: 'utf8',
    timeout: 15000,
  })
  assert.equal(r.error, undefined, `child failed to run: ${r.error}`)
  const line = r.stdout.trim().split('\n').pop()
  let result
  try {
    result = JSON.parse(line)
  } catch {
    assert.fail(`child printed no result (status ${r.status}, signal ${r.signal})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  }
  assert.equal(r.status, 0, `child exit status ${r.status}; stderr: ${r.stderr}`)
  return result
}

const real = () => fs.realpathSync(REAL_BIN)

describe('binary lookup', () => {
  before(() => {
    for (const dir of BARE_PATH.split(':')) {
      assert.equal(fs.existsSync(path.join(dir, 'pion-ipc')), false, `${dir} must not hold pion-ipc`)
    }
  })

  test('PION_IPC_BIN pointing at the real binary', () => {
    const r = runChild({ env: { PION_IPC_BIN: REAL_BIN } })
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.equal(r.pingOk, true)
    assert.equal(r.exe, real())
    assert.equal(r.started, false)
  })

  test('PION_IPC_BIN wins over the installed npm package', () => {
    const r = runChild({ env: { PION_IPC_BIN: fakeEcho } })
    assert.equal(r.ok, true, JSON.stringify(r))
    // the wrapper execs node running the fake, not the packaged binary
    assert.equal(r.exe, fs.realpathSync(process.execPath))
  })

  test('PION_IPC_BIN at a missing path: start() rejects naming the path', () => {
    const missing = path.join(tmp, 'no', 'such', 'pion-ipc')
    const r = runChild({ env: { PION_IPC_BIN: missing } })
    assert.equal(r.ok, false)
    assert.ok(r.error.includes(missing), `error must name ${missing}: ${r.error}`)
    assert.equal(r.started, false)
  })

  test('without PION_IPC_BIN the installed npm package is used', () => {
    const r = runChild({ env: { PION_IPC_BIN: undefined } })
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.equal(r.pingOk, true)
    assert.equal(r.resolvable, path.join(repo, 'node_modules', PKG, 'package.json'))
    assert.equal(r.exe, real())
  })

  test('not in node_modules: pion-ipc on PATH is used', () => {
    const r = runChild({ lib: isolatedLib, env: { PATH: `${pathDir}:${BARE_PATH}` } })
    assert.equal(r.resolvable, null, 'the isolated copy must not see the npm package')
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.equal(r.pingOk, true)
    assert.equal(r.exe, real())
  })

  test('found nowhere: the error names all three ways', () => {
    const r = runChild({ lib: isolatedLib, env: { PATH: BARE_PATH } })
    assert.equal(r.resolvable, null, 'the isolated copy must not see the npm package')
    assert.equal(r.ok, false, JSON.stringify(r))
    assert.equal(r.started, false)
    assert.ok(r.error.includes('PION_IPC_BIN'), r.error)
    assert.ok(r.error.includes(PKG), r.error)
    assert.ok(r.error.includes('PATH'), r.error)
  })

  test('binPath skips the search (PION_IPC_BIN set to a missing path)', () => {
    const r = runChild({
      options: { binPath: fakeEcho },
      env: { PION_IPC_BIN: path.join(tmp, 'missing-bin') },
    })
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.equal(r.exe, fs.realpathSync(process.execPath))
  })

  test('binPath to the real binary with no PATH and no package', () => {
    const r = runChild({ lib: isolatedLib, options: { binPath: REAL_BIN }, env: { PATH: BARE_PATH } })
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.equal(r.exe, real())
  })
})

// Node's resolution walks up to every ancestor node_modules, so a platform package can sit in
// a shared folder above the application (a hoisted workspace, or a planted one in /tmp).
describe('a platform package above the application', () => {
  // `<shared>/node_modules/<PKG>` whose bin/pion-ipc records that it ran (in `marker`) and
  // then runs the fake sidecar; the library is copied into `<shared>/project/lib`, whose own
  // folders hold no node_modules. Only `shared` gets `mode`: the package's folders are 0755.
  function plant(name, mode) {
    const shared = path.join(trustedBase, name)
    const pkgDir = path.join(shared, 'node_modules', PKG)
    const marker = path.join(trustedBase, `${name}.ran`)
    fs.mkdirSync(path.join(pkgDir, 'bin'), { recursive: true })
    fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify({ name: PKG, version: '0.0.0' }))
    const bin = path.join(pkgDir, 'bin', 'pion-ipc')
    fs.writeFileSync(bin, `#!/bin/sh\necho ran > "${marker}"\nexec "${process.execPath}" "${FAKE}" echo\n`)
    fs.chmodSync(bin, 0o755)
    const lib = path.join(shared, 'project', 'lib')
    fs.mkdirSync(lib, { recursive: true })
    for (const f of LIB_FILES) copyInto(f, lib)
    fs.chmodSync(shared, mode)
    return { shared, lib, bin, marker, resolved: path.join(pkgDir, 'package.json') }
  }

  test('in a world-writable folder it is refused and pion-ipc on PATH runs instead', () => {
    // (pathDir is under os.tmpdir(): PATH entries are not checked)
    const planted = plant('world-writable', 0o777)
    const r = runChild({ lib: planted.lib, env: { PATH: `${pathDir}:${BARE_PATH}` } })
    assert.equal(r.resolvable, planted.resolved, 'Node must resolve the planted package')
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.equal(r.pingOk, true)
    assert.equal(r.exe, real())
    assert.equal(fs.existsSync(planted.marker), false, 'the planted binary must never run')
    const refusal = r.logs.find((l) => l.includes(planted.bin))
    assert.ok(refusal?.startsWith('[pion-ipc] '), `a log line names the refused binary: ${JSON.stringify(r.logs)}`)
    assert.ok(refusal.includes(`${planted.shared} is writable by others`), refusal)
  })

  test('refused and nothing on PATH: the error names the refused binary and why', () => {
    const planted = plant('world-writable-alone', 0o777)
    const r = runChild({ lib: planted.lib, env: { PATH: BARE_PATH } })
    assert.equal(r.resolvable, planted.resolved, 'Node must resolve the planted package')
    assert.equal(r.ok, false, JSON.stringify(r))
    assert.equal(r.started, false)
    assert.ok(r.error.includes(planted.bin), `error must name ${planted.bin}: ${r.error}`)
    assert.ok(r.error.includes(`${planted.shared} is writable by others`), r.error)
    assert.ok(r.error.includes('PION_IPC_BIN') && r.error.includes('PATH'), r.error)
    assert.equal(fs.existsSync(planted.marker), false, 'the planted binary must never run')
  })

  test('control: the same layout in a folder only its owner can write is used', () => {
    const planted = plant('owner-only', 0o755)
    const r = runChild({ lib: planted.lib, env: { PATH: `${pathDir}:${BARE_PATH}` } })
    assert.equal(r.resolvable, planted.resolved)
    assert.equal(r.ok, true, JSON.stringify(r))
    // the package wins over PATH: the script ran and exec'd node with the fake
    assert.equal(r.exe, fs.realpathSync(process.execPath))
    assert.equal(fs.existsSync(planted.marker), true, 'the package binary must have run')
  })
})
