// A program written for @coclaw/pion-node runs unchanged once its import line points here.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const example = fileURLToPath(new URL('./migration/readme-example.mjs', import.meta.url))

test("@coclaw/pion-node's README example runs with only the import line changed", (t) => {
  // The example names a public STUN server; it may only run where nothing can leave the
  // machine (the test network namespace has no route out).
  if (process.env.PION_NETNS_ACTIVE !== '1') {
    t.skip('needs the private network namespace of scripts/netns-run.sh')
    return
  }
  const r = spawnSync(process.execPath, [example], { encoding: 'utf8', timeout: 30000 })
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`)
  assert.match(r.stdout, /^done: offer offer closed closed$/m)
})
