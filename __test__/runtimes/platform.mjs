// The runtimes matrix's checks (check.mjs) on the platform at hand, with the checkout's own
// addon and the sidecar its `npm install` brought: the workflow runs this where each target's
// binary can run (`node --test __test__/runtimes/platform.mjs`), macOS and Windows included.
// The scripts are copied into target/platform-check/, inside the checkout, where
// `import 'pion-node-rs'` resolves to the checkout itself.
import { test } from 'node:test'
import { copyFileSync, mkdirSync } from 'node:fs'
import { basename, join } from 'node:path'
import { root, run } from '../helpers/installed.mjs'
import { assertCheck } from './expect.mjs'

test(`${process.platform}-${process.arch}, Node ${process.versions.node}: loopback both ways, crash reported as exit, worker torn down mid-traffic, stop() and exit by itself`, { timeout: 90_000 }, async () => {
  const dir = join(root, 'target', 'platform-check')
  mkdirSync(dir, { recursive: true })
  for (const file of ['runtimes/check.mjs', 'runtimes/worker.mjs', 'fixtures/installed-pair.mjs', 'helpers/util.mjs']) {
    copyFileSync(join(root, '__test__', file), join(dir, basename(file)))
  }
  const { stdout } = await run(process.execPath, ['check.mjs'], { cwd: dir, timeout: 60_000, env: process.env })
  const result = JSON.parse(stdout.trim().split('\n').pop())
  // Thread names are read from /proc: the reader is only known on Linux.
  assertCheck(result, { name: `Node ${process.versions.node}`, reader: process.platform === 'linux' ? 'loop' : 'unknown' })
})
