// Shared test helpers: bounded waits and process checks.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

export { sleep }

/** Resolves or rejects with `promise`, or rejects after `ms` with a message naming `what`. */
export function withTimeout(promise, ms, what = 'operation') {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** The arguments of the next `event` on `emitter`, within `ms`. */
export function nextEvent(emitter, event, ms = 5000) {
  let listener
  const p = new Promise((resolve) => {
    listener = (...args) => resolve(args)
    emitter.once(event, listener)
  })
  return withTimeout(p, ms, `event ${event}`).finally(() => emitter.off(event, listener))
}

/** This process's threads as tid -> name (from /proc; empty where there is none), for
 * telling which stdout reader runs. */
export function threads() {
  const names = new Map()
  for (const tid of existsSync('/proc/self/task') ? readdirSync('/proc/self/task') : []) {
    try {
      names.set(tid, readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim())
    } catch {}
  }
  return names
}

/** Whether a process with this pid exists and is not a zombie. */
export function alive(pid) {
  if (!pid) return false
  if (!existsSync('/proc/self')) {
    // No /proc (macOS, Windows): signal 0 only asks whether the process exists.
    try {
      process.kill(pid, 0)
      return true
    } catch (e) {
      return e.code === 'EPERM'
    }
  }
  if (!existsSync(`/proc/${pid}`)) return false
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the state letter follows the parenthesised command name
    return stat[stat.lastIndexOf(')') + 2] !== 'Z'
  } catch {
    return false
  }
}

/** Waits until `pid` is gone, up to `ms`; returns whether it is. */
export async function waitGone(pid, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (!alive(pid)) return true
    await sleep(20)
  }
  return !alive(pid)
}

/** Polls `check` until it returns truthy or `ms` pass. */
export async function until(check, ms, what = 'condition') {
  const end = Date.now() + ms
  while (Date.now() < end) {
    const value = await check()
    if (value) return value
    await sleep(10)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}
