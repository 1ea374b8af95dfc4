// Makes a fresh clone runnable: installs the npm dependencies when they are missing, then
// builds the addon (cargo makes this a no-op when nothing changed).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const run = (...args) => execFileSync(npm, args, { cwd: root, stdio: 'inherit' })

if (!existsSync(join(root, 'node_modules', '@napi-rs', 'cli'))) {
  run('install', '--no-audit', '--no-fund')
}
run('run', 'build')
