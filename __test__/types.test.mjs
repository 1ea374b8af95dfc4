// index.d.ts: a typed example compiles under --strict; listeners of the wrong shape do not.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')
const dir = fileURLToPath(new URL('./types/', import.meta.url))

function runTsc(args) {
  const r = spawnSync(process.execPath, [tsc, ...args], { cwd: dir, encoding: 'utf8', timeout: 120000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

test('the typed example compiles with tsc --noEmit --strict', () => {
  const r = runTsc(['-p', 'tsconfig.json'])
  assert.equal(r.status, 0, r.out)
})

test('listeners of the wrong shape and unknown events do not compile', () => {
  const r = runTsc(['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', 'wrong-listener.ts'])
  assert.notEqual(r.status, 0)
  assert.match(r.out, /wrong-listener\.ts\(6,\d+\): error TS2345: .*'\(e: string\) => void'.*RTCDataChannelEvent/)
  assert.match(r.out, /wrong-listener\.ts\(8,\d+\): error TS2345: .*MessageEvent/)
  assert.match(r.out, /wrong-listener\.ts\(9,\d+\): error TS2345: Argument of type '"foo"'/)
})
