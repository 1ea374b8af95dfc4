'use strict'

// The sidecar the standard API uses: one PionIpc per JavaScript thread (this module is
// loaded once per thread), started on first use and stopped after the last connection
// closed and IDLE_MS passed, so that Node exits by itself. `configure()` replaces it.

const { PionIpc } = require('../../index.js')

const DEFAULT_IDLE_MS = 1000

/** The default sidecar's logger: its stderr chatter (about 15 lines per connection) is
 * dropped unless it is a warning or an error; the SDK's own lines are kept. */
function quietLogger(line) {
  if (line.startsWith('[pion-ipc] request error')) return
  if (line.startsWith('[pion-ipc] [stderr]') && !/"level":"(WARN|ERROR)"/.test(line)) return
  if (line.includes('"level":"WARN"') && line.includes('"request failed"')) return
  console.warn(line)
}

let options = { logger: quietLogger }
let given = null // a PionIpc the user passed to configure(): never started or stopped here
let idleMs = DEFAULT_IDLE_MS
let current = null // { ipc, ready, users, idle }

/**
 * configure({ ipc?, idleMs?, ...PionIpcOptions }): what the next connections use. A PionIpc
 * given as `ipc` is the user's: started by them or here on first use, never stopped here.
 */
function configure(config = {}) {
  if (config === null || typeof config !== 'object') throw new TypeError('configure() takes an options object')
  const { ipc, idleMs: idle, ...rest } = config
  if (ipc !== undefined && ipc !== null && !(ipc instanceof PionIpc)) throw new TypeError('configure({ ipc }) takes a PionIpc')
  if (idle !== undefined && !(Number.isFinite(idle) && idle >= 0)) throw new RangeError('configure({ idleMs }) takes a number of ms >= 0')
  given = ipc ?? null
  options = { logger: quietLogger, ...rest }
  idleMs = idle ?? DEFAULT_IDLE_MS
  // Connections made so far keep their sidecar; the next ones use the new one.
  if (current && current.users === 0) retire(current)
  current = null
}

const starting = new WeakMap()

/** A user's PionIpc, started here unless it runs (once, however many connections ask). */
function startOwned(ipc) {
  if (ipc.started) return Promise.resolve()
  let ready = starting.get(ipc)
  if (ready === undefined) {
    try {
      ready = ipc.start()
    } catch (err) {
      ready = Promise.reject(err)
    }
    const forget = () => starting.delete(ipc)
    ready.then(forget, forget)
    starting.set(ipc, ready)
  }
  return ready
}

/** A sidecar for one more connection: `{ ipc, ready, release }`. `ready` never rejects
 * unhandled; it settles once the sidecar is started (or failed to). */
function acquire(ipc) {
  if (ipc) {
    // A PionIpc passed in the configuration: the user's own.
    const ready = startOwned(ipc)
    ready.catch(() => {})
    return { ipc, ready, release() {} }
  }
  if (current === null || current.dead) current = open()
  const entry = current
  entry.users++
  if (entry.idle) {
    clearTimeout(entry.idle)
    entry.idle = null
  }
  let released = false
  return {
    ipc: entry.ipc,
    ready: entry.ready,
    release() {
      if (released) return
      released = true
      entry.users--
      if (entry.users === 0 && !entry.owned) {
        entry.idle = setTimeout(() => {
          entry.idle = null
          if (entry.users === 0) retire(entry)
        }, idleMs)
        // The sidecar holds the process up until then; this timer does not.
        entry.idle.unref?.()
      }
    },
  }
}

function open() {
  const owned = given !== null
  const ipc = given ?? new PionIpc(options)
  const entry = { ipc, ready: null, users: 0, idle: null, owned, dead: false }
  if (owned) {
    entry.ready = startOwned(ipc)
  } else {
    try {
      entry.ready = ipc.start()
    } catch (err) {
      entry.ready = Promise.reject(err)
    }
  }
  entry.ready.catch(() => {
    // A failed start: the next connection tries a new one.
    entry.dead = true
    if (current === entry) current = null
  })
  if (!owned) {
    // A crashed sidecar: its connections failed; the next ones get a new sidecar.
    ipc.on('exit', () => {
      entry.dead = true
      if (current === entry) current = null
    })
  }
  return entry
}

function retire(entry) {
  entry.dead = true
  if (current === entry) current = null
  if (entry.owned) return
  entry.ready.then(
    () => entry.ipc.stop().catch(() => {}),
    () => {},
  )
}

module.exports = { configure, acquire }
