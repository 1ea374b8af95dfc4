// The package as a user installs it, made without the registry: `npm run package` writes this
// checkout's tarballs, the sidecar package that the checkout's own `npm install` put into
// node_modules is packed again, and npm installs the three into a fresh project with
// --offline. Local tarballs need no registry metadata (the other platforms' optional
// dependencies are skipped by npm), so this works inside the network namespace and with an
// empty npm cache.
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
export const sidecarPkg = `@coclaw/pion-ipc-${process.platform}-${process.arch}`
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** process.env without what would let a child find things through this checkout. */
export function isolatedEnv(extra = {}) {
  const env = { ...process.env }
  for (const name of ['PION_IPC_BIN', 'NODE_PATH', 'NODE_OPTIONS', 'NODE_TEST_CONTEXT', 'NAPI_RS_NATIVE_LIBRARY_PATH']) {
    delete env[name]
  }
  for (const name of Object.keys(env)) if (name.startsWith('npm_')) delete env[name]
  return { ...env, ...extra }
}

/** Runs a command to completion within `timeout` ms; rejects with its output on failure. */
export function run(cmd, args, { cwd, timeout, env = isolatedEnv() } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, timeout, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const why = err.killed ? `killed after ${timeout} ms` : `exit code ${err.code ?? err.signal}`
        reject(new Error(`${cmd} ${args.join(' ')}: ${why}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`))
      } else {
        resolve({ stdout, stderr })
      }
    })
  })
}

/**
 * Packs this checkout and installs it, with this platform's binary package and the sidecar
 * package, into a new temporary project, and copies `files` (paths relative to the checkout)
 * into it. Returns { project, packed, cleanup }; packed is what `scripts/package.mjs --json`
 * printed ({ main, platform, triple, version }).
 */
export async function installedProject(prefix, files = []) {
  const { stdout } = await run(process.execPath, [join(root, 'scripts', 'package.mjs'), '--json'], {
    cwd: root,
    timeout: 300_000,
    env: process.env,
  })
  const packed = JSON.parse(stdout.trim().split('\n').pop())
  const sidecarDir = join(root, 'node_modules', ...sidecarPkg.split('/'))
  if (!existsSync(join(sidecarDir, 'package.json'))) {
    throw new Error(`${sidecarPkg} is not in the checkout's node_modules: run \`npm install\` there first`)
  }
  const project = mkdtempSync(join(tmpdir(), prefix))
  try {
    const [sidecar] = JSON.parse((await run(npm, ['pack', '--json', '--pack-destination', project, sidecarDir], { cwd: project, timeout: 60_000 })).stdout)
    await run(npm, ['init', '-y'], { cwd: project, timeout: 30_000 })
    const install = ['install', '--offline', '--no-audit', '--no-fund', '--omit=dev']
    await run(npm, [...install, packed.main, packed.platform, join(project, sidecar.filename)], { cwd: project, timeout: 120_000 })
    for (const file of files) copyFileSync(join(root, file), join(project, basename(file)))
  } catch (err) {
    rmSync(project, { recursive: true, force: true })
    throw err
  }
  return { project, packed, cleanup: () => rmSync(project, { recursive: true, force: true }) }
}
