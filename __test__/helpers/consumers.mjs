// Helpers for __test__/consumers.test.mjs: child processes that speak JSON lines, and a
// minimal nostr relay for trystero, all on 127.0.0.1.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { WebSocketServer } from 'ws'
import { alive, withTimeout } from './util.mjs'

export const dir = fileURLToPath(new URL('./consumers/', import.meta.url))

/**
 * Starts `node file ...args` with its cwd at the repository (so that `pion-node-rs/polyfill`
 * resolves to this checkout). `events` collects the JSON lines of its stdout; `next(event,
 * ms)` waits for one; `exited` settles with `{ code, signal }`; `kill()` ends it by its pid.
 */
export function child(file, args = [], { env = {} } = {}) {
  const proc = spawn(process.execPath, [file, ...args], {
    cwd: fileURLToPath(new URL('../../', import.meta.url)),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const events = []
  const waiters = []
  let stdout = ''
  let stderr = ''
  proc.stdout.setEncoding('utf8')
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (s) => {
    stderr += s
  })
  proc.stdout.on('data', (s) => {
    stdout += s
    let nl
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, nl)
      stdout = stdout.slice(nl + 1)
      let msg
      try {
        msg = JSON.parse(line)
      } catch {
        msg = { event: 'stdout', line }
      }
      events.push(msg)
      for (const w of [...waiters]) w(msg)
    }
  })
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }))
  })
  return {
    pid: proc.pid,
    events,
    exited,
    get stderr() {
      return stderr
    },
    /** The first line with this event (or an 'error' line, which rejects), within `ms`. */
    next(event, ms) {
      const found = events.find((m) => m.event === event || m.event === 'error')
      const p = found
        ? Promise.resolve(found)
        : new Promise((resolve) => {
            const w = (m) => {
              if (m.event !== event && m.event !== 'error') return
              waiters.splice(waiters.indexOf(w), 1)
              resolve(m)
            }
            waiters.push(w)
            exited.then(() => resolve({ event: 'exited before', wanted: event }))
          })
      return withTimeout(p, ms, `'${event}' from ${file} (stderr: ${stderr.slice(-2000)})`).then((m) => {
        if (m.event !== event) throw new Error(`${file}: ${JSON.stringify(m)} while waiting for '${event}'; stderr: ${stderr.slice(-2000)}`)
        return m
      })
    },
    kill() {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, 'SIGKILL')
    },
  }
}

/** Waits for `c` to exit by itself within `ms`; kills it (by pid) if it does not. */
export async function exitsByItself(c, ms) {
  try {
    return await withTimeout(c.exited, ms, `exit of pid ${c.pid} by itself (stderr: ${c.stderr.slice(-2000)})`)
  } catch (err) {
    c.kill()
    await withTimeout(c.exited, 5000, `exit of pid ${c.pid} after SIGKILL`).catch(() => {})
    throw err
  }
}

/** The sidecar pids (from the children's reports) that still run. */
export function living(pids) {
  return pids.filter((pid) => alive(pid))
}

/**
 * A nostr relay reduced to what trystero's nostr strategy uses (NIP-01 REQ, CLOSE and EVENT):
 * every EVENT is acknowledged with OK and sent to the subscriptions whose filter has its kind
 * and its `#x` tag. Nothing is stored: trystero's kinds (20000-29999) are ephemeral.
 * Signatures are not checked. `close()` ends every socket and the server.
 */
export async function nostrRelay() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await withTimeout(once(wss, 'listening'), 5000, 'nostr relay listening')
  const subscriptions = new Map() // socket -> Map(subId -> filter)
  const counts = { EVENT: 0, REQ: 0, CLOSE: 0, forwarded: 0 }
  const matches = (filter, ev) => {
    if (Array.isArray(filter.kinds) && !filter.kinds.includes(ev.kind)) return false
    const wanted = filter['#x']
    if (Array.isArray(wanted)) {
      const tags = (ev.tags ?? []).filter((t) => t[0] === 'x').map((t) => t[1])
      if (!tags.some((t) => wanted.includes(t))) return false
    }
    return true
  }
  wss.on('connection', (socket) => {
    subscriptions.set(socket, new Map())
    socket.on('close', () => subscriptions.delete(socket))
    socket.on('message', (raw) => {
      let msg
      try {
        msg = JSON.parse(String(raw))
      } catch {
        socket.send(JSON.stringify(['NOTICE', 'invalid: not JSON']))
        return
      }
      const [type, ...rest] = msg
      if (type in counts) counts[type]++
      if (type === 'REQ') {
        const [subId, ...filters] = rest
        subscriptions.get(socket)?.set(subId, filters)
        socket.send(JSON.stringify(['EOSE', subId]))
      } else if (type === 'CLOSE') {
        subscriptions.get(socket)?.delete(rest[0])
      } else if (type === 'EVENT') {
        const ev = rest[0]
        socket.send(JSON.stringify(['OK', ev.id, true, '']))
        for (const [peer, subs] of subscriptions) {
          for (const [subId, filters] of subs) {
            if (filters.some((f) => matches(f, ev))) {
              counts.forwarded++
              peer.send(JSON.stringify(['EVENT', subId, ev]))
            }
          }
        }
      } else {
        socket.send(JSON.stringify(['NOTICE', `unsupported: ${type}`]))
      }
    })
  })
  const { port } = wss.address()
  return {
    url: `ws://127.0.0.1:${port}`,
    counts,
    async close() {
      for (const socket of wss.clients) socket.terminate()
      await withTimeout(new Promise((resolve) => wss.close(resolve)), 5000, 'nostr relay close')
    },
  }
}
