// `npm run package`: installable tarballs of this checkout in dist/ (gitignored):
//   dist/pion-node-rs-<version>.tgz           the main package (JavaScript, types; no .node)
//   dist/pion-node-rs-<triple>-<version>.tgz  this platform's binary package (npm/<triple>)
// The main package finds its binary the way a published one does: binding.js tries
// ./pion-node-rs.<triple>.node (not packed) and then the package pion-node-rs-<triple>.
//
// Builds the addon first when it is missing or older than the Rust sources.
// With --json, prints { main, platform, triple, version } (absolute paths) on stdout.
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const json = process.argv.includes('--json')
const log = (line) => process.stderr.write(`[package] ${line}\n`)

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const binaryName = pkg.napi.binaryName

/** This host's napi platform triple, as the generated binding.js names it. */
function hostTriple() {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform === 'darwin') return `darwin-${arch}`
  if (platform === 'linux') {
    const musl = !process.report?.getReport?.().header?.glibcVersionRuntime
    const abi = arch === 'arm' ? (musl ? 'musleabihf' : 'gnueabihf') : musl ? 'musl' : 'gnu'
    return `linux-${arch}-${abi}`
  }
  return `${platform}-${arch}`
}

function newestMtime(path) {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = stat.mtimeMs
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)))
  return newest
}

function run(cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
}

/** `npm pack` of dir into dist/; returns the tarball's absolute path. */
function pack(dir) {
  const [info] = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', dist], dir))
  log(`${info.filename}: ${info.files.map((f) => f.path).join(', ')}`)
  return join(dist, info.filename)
}

const triple = hostTriple()
const platformDir = join(root, 'npm', triple)
if (!existsSync(join(platformDir, 'package.json'))) {
  throw new Error(`no npm/${triple}/package.json: ${triple} is not among the napi targets in package.json`)
}
const platformPkg = JSON.parse(readFileSync(join(platformDir, 'package.json'), 'utf8'))
if (platformPkg.version !== pkg.version) {
  throw new Error(`npm/${triple} is at version ${platformPkg.version}, the root at ${pkg.version}: run \`npm run version\``)
}

// 1. The addon and the generated loader, current with the sources.
const addon = join(root, `${binaryName}.${triple}.node`)
const sources = ['src', 'Cargo.toml', 'Cargo.lock', 'build.rs'].map((p) => newestMtime(join(root, p)))
const built = ['binding.js', 'binding.d.ts'].every((f) => existsSync(join(root, f))) && existsSync(addon)
if (!built || statSync(addon).mtimeMs < Math.max(...sources)) {
  log(built ? 'the addon is older than the Rust sources: building' : 'no addon yet: building')
  execFileSync(npm, ['run', 'build'], { cwd: root, stdio: ['ignore', process.stderr, 'inherit'] })
} else {
  log(`using the built ${binaryName}.${triple}.node`)
}

// 2. The tarballs, replacing those of an earlier run.
mkdirSync(dist, { recursive: true })
for (const f of readdirSync(dist)) if (/^pion-node-rs-.*\.tgz$/.test(f)) rmSync(join(dist, f))

const main = pack(root)
const staging = mkdtempSync(join(tmpdir(), 'pion-node-rs-package-'))
let platform
try {
  const dir = join(staging, triple)
  cpSync(platformDir, dir, { recursive: true })
  cpSync(addon, join(dir, platformPkg.main))
  platform = pack(dir)
} finally {
  rmSync(staging, { recursive: true, force: true })
}

if (json) process.stdout.write(`${JSON.stringify({ main, platform, triple, version: pkg.version })}\n`)
else log(`wrote ${main}\n[package] wrote ${platform}`)
