// Sends a file from one Node process to another over an RTCDataChannel, each process with
// its own pion-ipc sidecar, negotiated through signaling-server.mjs on 127.0.0.1.
//   npm run example:file-transfer -- <file>        sends <file>
//   npm run example:file-transfer                  sends 20 MB of random data
//   npm run example:file-transfer -- --size-mb 5   sends 5 MB of random data
// The sender sends 64 KiB − 1 byte chunks, paced with bufferedAmountLowThreshold and
// `bufferedamountlow`; the receiver writes them to a temporary file and shows its progress
// on stderr; both sides compare SHA-256 digests at the end. Exits 0 when they match.
import { spawn } from 'node:child_process'
import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, open, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PionIpc } from '../index.mjs'
import { startSignalingServer } from './signaling-server.mjs'
import { Signaling, connectPeer, finish } from './signaling-client.mjs'

const CHUNK = 65535 // maxMessageSize: 64 KiB − 1
const LOW = 1 << 20 // bufferedAmountLowThreshold
const HIGH = 4 << 20 // stop sending above this much buffered
const STALL_MS = 15000
const TIMEOUT_MS = 55000
const MB = 1e6

const args = process.argv.slice(2)
const opt = (name) => {
  const i = args.indexOf(name)
  if (i < 0) return undefined
  const [, value] = args.splice(i, 2)
  return value
}
const role = opt('--role')
if (role === 'send' || role === 'receive') {
  await child(role, opt('--signal'), opt('--file'))
} else {
  await launcher(Number(opt('--size-mb') ?? 20), args[0])
}

async function launcher(sizeMb, file) {
  const dir = await mkdtemp(join(tmpdir(), 'pion-file-transfer-'))
  try {
    if (file) {
      const st = await stat(file).catch((err) => err)
      if (st instanceof Error || !st.isFile()) {
        console.error(`file-transfer: cannot send ${file}: ${st instanceof Error ? st.message : 'not a regular file'}`)
        process.exitCode = 2
        return
      }
    } else {
      file = join(dir, 'random.bin')
      await generate(file, Math.round(sizeMb * MB))
      console.log(`generated ${sizeMb} MB of random data in ${file}`)
    }
    const server = await startSignalingServer()
    const script = fileURLToPath(import.meta.url)
    const run = (...argv) =>
      new Promise((resolve) => {
        const c = spawn(process.execPath, [script, ...argv, '--signal', server.url], { stdio: ['ignore', 'inherit', 'inherit'] })
        const timer = setTimeout(() => c.kill('SIGKILL'), TIMEOUT_MS)
        c.on('error', (err) => console.error(err.message))
        c.on('close', (code, signal) => {
          clearTimeout(timer)
          resolve(code ?? signal)
        })
      })
    const [sender, receiver] = await Promise.all([
      run('--role', 'send', '--file', file),
      run('--role', 'receive', '--file', join(dir, `received-${basename(file)}`)),
    ])
    await server.close()
    console.log(`sender exited with ${sender}, receiver exited with ${receiver}`)
    process.exitCode = sender === 0 && receiver === 0 ? 0 : 1
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function generate(path, size) {
  const fh = await open(path, 'w')
  try {
    const block = Buffer.alloc(1 << 20)
    for (let left = size; left > 0; left -= block.length) {
      randomFillSync(block)
      await fh.write(block, 0, Math.min(left, block.length))
    }
  } finally {
    await fh.close()
  }
}

async function sha256File(path) {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk)
  return hash.digest('hex')
}

async function child(role, url, file) {
  const me = role === 'send' ? 'sender' : 'receiver'
  const watchdog = setTimeout(() => {
    console.error(`${me}: gave up after ${TIMEOUT_MS / 1000} s`)
    process.exit(1)
  }, TIMEOUT_MS - 2000)
  const ipc = new PionIpc({ logger: () => {} })
  const signaling = new Signaling(url, { room: 'file', me: role, peer: role === 'send' ? 'receive' : 'send' })
  let pc
  try {
    await ipc.start()
    if (role === 'send') pc = await send(ipc, signaling, file)
    else pc = await receive(ipc, signaling, file)
    await finish(signaling)
  } catch (err) {
    console.error(`${me}: failed: ${err.stack ?? err}`)
    process.exitCode = 1
  } finally {
    await pc?.close().catch(() => {})
    await signaling.close()
    await ipc.stop()
    clearTimeout(watchdog)
  }
}

/** A queue of received messages: push() is the listener, next(ms) takes the oldest. */
function messages() {
  const queue = []
  const waiters = []
  return {
    push: ({ data }) => (waiters.length ? waiters.shift()(data) : queue.push(data)),
    next: (ms) =>
      queue.length
        ? Promise.resolve(queue.shift())
        : new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms)
            waiters.push((d) => {
              clearTimeout(t)
              resolve(d)
            })
          }),
  }
}

async function send(ipc, signaling, file) {
  const inbox = messages()
  const { size } = await stat(file)
  const { pc, dc } = await connectPeer({ ipc, signaling, role: 'offer', label: 'file', onMessage: inbox.push })
  console.log(`sender: connected; sending ${basename(file)} (${(size / MB).toFixed(1)} MB)`)

  dc.bufferedAmountLowThreshold = LOW
  const drained = () =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`bufferedAmount stuck at ${dc.bufferedAmount} for ${STALL_MS} ms`)), STALL_MS)
      dc.once('bufferedamountlow', () => {
        clearTimeout(t)
        resolve()
      })
    })

  const t0 = performance.now()
  dc.send(JSON.stringify({ type: 'meta', name: basename(file), size }))
  const hash = createHash('sha256')
  const fh = await open(file, 'r')
  try {
    for (let sent = 0; sent < size; ) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK, size - sent))
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, sent)
      if (bytesRead !== chunk.length) throw new Error(`short read at ${sent}`)
      while (dc.bufferedAmount > HIGH) await drained()
      dc.send(chunk)
      hash.update(chunk)
      sent += chunk.length
    }
  } finally {
    await fh.close()
  }
  const digest = hash.digest('hex')
  dc.send(JSON.stringify({ type: 'end', sha256: digest }))

  const result = JSON.parse(await inbox.next(STALL_MS * 2))
  const s = (performance.now() - t0) / 1000
  console.log(`sender: sent ${size} bytes in ${s.toFixed(2)} s (${(size / MB / s).toFixed(1)} MB/s)`)
  console.log(`sender: SHA-256 ${digest}`)
  if (result.sha256 !== digest) throw new Error(`the receiver got SHA-256 ${result.sha256}, expected ${digest}`)
  console.log('sender: receiver confirmed the SHA-256: match')
  return pc
}

async function receive(ipc, signaling, out) {
  let meta
  let received = 0
  let t0
  let lastDraw = 0
  let lastPct = -1
  let ws
  const hash = createHash('sha256')
  let ended
  const done = new Promise((resolve, reject) => (ended = { resolve, reject }))
  const tty = process.stderr.isTTY

  const draw = (force) => {
    const now = performance.now()
    const frac = meta.size ? received / meta.size : 1
    const pct = Math.floor(frac * 100)
    if (!force && (tty ? now - lastDraw < 100 : Math.floor(pct / 10) <= Math.floor(lastPct / 10))) return
    lastDraw = now
    lastPct = pct
    const width = 30
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.')
    const rate = received / MB / Math.max((now - t0) / 1000, 1e-3)
    const line = `[${bar}] ${String(pct).padStart(3)}%  ${(received / MB).toFixed(1)}/${(meta.size / MB).toFixed(1)} MB  ${rate.toFixed(1)} MB/s`
    process.stderr.write(tty ? `\r${line}${force ? '\n' : ''}` : `${line}\n`)
  }

  const onMessage = ({ data }) => {
    try {
      if (typeof data !== 'string') {
        if (!meta) throw new Error('binary data before the file metadata')
        ws.write(data)
        hash.update(data)
        received += data.length
        draw(received === meta.size)
        return
      }
      const msg = JSON.parse(data)
      if (msg.type === 'meta') {
        meta = msg
        t0 = performance.now()
        ws = createWriteStream(out)
        console.log(`receiver: receiving ${meta.name} (${meta.size} bytes) into ${out}`)
        if (meta.size === 0) draw(true)
      } else if (msg.type === 'end') {
        ended.resolve(msg.sha256)
      }
    } catch (err) {
      ended.reject(err)
    }
  }

  const { pc, dc } = await connectPeer({ ipc, signaling, role: 'answer', label: 'file', onMessage })
  console.log('receiver: connected')
  const expected = await done
  await new Promise((resolve, reject) => ws.end((err) => (err ? reject(err) : resolve())))
  const s = (performance.now() - t0) / 1000
  const streamed = hash.digest('hex')
  const onDisk = await sha256File(out)
  dc.send(JSON.stringify({ type: 'result', sha256: onDisk }))
  console.log(`receiver: got ${received} bytes in ${s.toFixed(2)} s (${(received / MB / s).toFixed(1)} MB/s)`)
  console.log(`receiver: SHA-256 ${onDisk}`)
  if (received !== meta.size) throw new Error(`got ${received} bytes, expected ${meta.size}`)
  if (streamed !== onDisk) throw new Error(`the file on disk (${onDisk}) differs from what arrived (${streamed})`)
  if (onDisk !== expected) throw new Error(`SHA-256 mismatch: sender says ${expected}`)
  console.log('receiver: SHA-256 matches the sender\'s')
  return pc
}
