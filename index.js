'use strict'

// The public surface: the native classes made EventEmitters, with on<event> properties.
// All behaviour lives in Rust (src/); this file forwards calls and emits what the native
// side hands over in batches.

const { EventEmitter } = require('node:events')
const { markAsUntransferable } = require('node:worker_threads')
const path = require('node:path')
const binding = require('./binding.js')
const { DataChannelStream, createDataChannelStream } = require('./lib/stream.js')

// Shared with the standard API (polyfill.js), which reads the native objects' extra getters.
const NATIVE = Symbol.for('pion-node-rs.native')
// The standard API's connections are made while their sidecar starts (never the old API's).
const AFTER_START = Symbol.for('pion-node-rs.afterStart')
const LOGGER = Symbol('pion-node-rs.logger')
const INTERNAL = Symbol('pion-node-rs.internal')
const SLOT = Symbol('pion-node-rs.slot')

// A throwing listener must not cost the rest of the batch its delivery, nor break a
// channel; its error still surfaces as an uncaught exception, as from any EventEmitter.
function rethrowLater(err) {
  process.nextTick(() => {
    throw err
  })
}

// Called by the native side for each event, on the JavaScript thread, in sidecar order,
// right after the state change that goes with it.
function dispatch(target, name, ...args) {
  if (target === undefined) return
  if (name === 'log') {
    try {
      target[LOGGER](args[0])
    } catch {
      // a broken logger must not break anything
    }
  } else if (name !== 'error' || target.listenerCount('error') > 0) {
    try {
      target.emit(name, ...args)
    } catch (err) {
      rethrowLater(err)
    }
  }
}

let flushQueued = false
function flushWrites() {
  flushQueued = false
  binding.flushWrites()
}

// The hot path: one call per received message, the event object made here. A small binary
// message comes as a slice (offset, length) of a pool ArrayBuffer shared with other messages;
// like Node's own Buffer pool, a pool cannot be transferred away (Node 20 copies it instead).
let lastPool = null
function message(target, data, offset, length) {
  if (target === undefined) return
  if (length !== undefined) {
    if (data !== lastPool) {
      markAsUntransferable(data)
      lastPool = data
    }
    data = Buffer.from(data, offset, length)
  }
  try {
    target.emit('message', { data })
  } catch (err) {
    rethrowLater(err)
  }
}

// The stdout reader on the event loop needs Node's own libuv (Node, Electron); Bun and Deno
// provide libuv's names, not its loop, and get the reader thread.
const realLibuv =
  process.release?.name === 'node' &&
  process.versions?.bun === undefined &&
  process.versions?.deno === undefined &&
  typeof globalThis.Bun === 'undefined' &&
  typeof globalThis.Deno === 'undefined'

// Node-API cannot read a SharedArrayBuffer itself (before Node 24); the native side asks here
// for a Uint8Array over one, for a value that is no other kind of binary. Taken at load time,
// so that a program replacing the globals later changes nothing.
const { isSharedArrayBuffer } = require('node:util').types
const SharedView = Uint8Array
function sharedView(value) {
  return isSharedArrayBuffer(value) ? new SharedView(value) : undefined
}

binding.init(dispatch, (handle) => new RTCDataChannel(INTERNAL, new binding.NativeDataChannel(handle)), message, realLibuv, sharedView)

// The calls made per message (send, bufferedAmount, readyState), as plain functions of the
// channel's slot number: a method of the native class costs several times its work in
// unwrapping `this`.
const hot = binding.hotCalls()
const READY_STATES = ['connecting', 'open', 'closing', 'closed']

// Native methods throw for bad arguments; as promise-returning methods they reject instead.
// The native promise itself is returned (not adopted by an async function), so it settles
// in the same turn as the events of its batch.
function settle(fn) {
  try {
    return fn()
  } catch (err) {
    return Promise.reject(err)
  }
}

function resolvePackage(name) {
  try {
    return path.dirname(require.resolve(`${name}/package.json`))
  } catch {
    return null
  }
}

/** What was thrown, as text, without running more of the thrower's code than reading
 * `message` (which may throw in turn). */
function describeThrown(err) {
  try {
    if (typeof err === 'string') return err
    const message = err?.message
    if (typeof message === 'string') return message
  } catch {}
  return `a thrown ${err === null ? 'null' : typeof err}`
}

function defaultLogger(line) {
  console.warn(line)
}

/** Defines on<event> properties: assigning replaces the previous handler, null removes it. */
function defineHandlers(Class, events) {
  for (const event of events) {
    const slot = Symbol(`on${event}`)
    Object.defineProperty(Class.prototype, `on${event}`, {
      configurable: true,
      enumerable: false,
      get() {
        return this[slot] ?? null
      },
      set(handler) {
        if (this[slot]) this.off(event, this[slot])
        this[slot] = typeof handler === 'function' ? handler : null
        if (this[slot]) this.on(event, this[slot])
      },
    })
  }
}

class PionIpc extends EventEmitter {
  constructor(options) {
    super()
    this[NATIVE] = new binding.NativePionIpc(options, this)
    this[LOGGER] = options?.logger ?? defaultLogger
    // Sidecar events are re-emitted here only once someone listens for one.
    this.on('newListener', (name) => {
      if (typeof name === 'string' && name.includes('.')) this[NATIVE].forwardRawEvents = true
    })
  }

  get started() {
    return this[NATIVE].started
  }

  /** The sidecar's process id while one runs, else null. */
  get pid() {
    return this[NATIVE].pid
  }

  start() {
    return settle(() => this[NATIVE].start(resolvePackage))
  }

  stop(timeout) {
    return settle(() => this[NATIVE].stop(timeout))
  }

  request(method, opts, payload) {
    return settle(() => this[NATIVE].request(method, opts, payload))
  }
}

class RTCDataChannel extends EventEmitter {
  constructor(internal, native) {
    super()
    if (internal !== INTERNAL) throw new TypeError('Illegal constructor: use RTCPeerConnection.createDataChannel()')
    this[NATIVE] = native
    this[SLOT] = native.slot
    native.attach(this)
  }

  get label() {
    return this[NATIVE].label
  }

  get ordered() {
    return this[NATIVE].ordered
  }

  get readyState() {
    return READY_STATES[hot.readyState(this[SLOT])]
  }

  get bufferedAmount() {
    return hot.bufferedAmount(this[SLOT])
  }

  get bufferedAmountLowThreshold() {
    return this[NATIVE].bufferedAmountLowThreshold
  }

  set bufferedAmountLowThreshold(value) {
    this[NATIVE].bufferedAmountLowThreshold = value
  }

  send(data) {
    // The frames of a burst of send() calls go to the sidecar together, from a microtask
    // (written right there when the pipe takes them, else by the writer task).
    if (!flushQueued) {
      flushQueued = true
      queueMicrotask(flushWrites)
    }
    hot.send(this[SLOT], data)
  }

  close() {
    return settle(() => this[NATIVE].close())
  }
}
defineHandlers(RTCDataChannel, ['open', 'close', 'message', 'error', 'bufferedamountlow'])

class RTCPeerConnection extends EventEmitter {
  constructor(options) {
    super()
    // Reading an option may throw (a getter, a Proxy): the connection then fails with that
    // reason, as with any bad option; the constructor itself never throws.
    let ipc = null
    let unreadable = null
    let afterStart = false
    try {
      ipc = options?._ipc?.[NATIVE] ?? null
      afterStart = options?.[AFTER_START] === true
    } catch (err) {
      unreadable = `cannot read option _ipc: ${describeThrown(err)}`
    }
    this[NATIVE] = new binding.NativePeerConnection(ipc, options, this, unreadable, afterStart)
  }

  get connectionState() {
    return this[NATIVE].connectionState
  }

  get iceConnectionState() {
    return this[NATIVE].iceConnectionState
  }

  get iceGatheringState() {
    return this[NATIVE].iceGatheringState
  }

  get signalingState() {
    return this[NATIVE].signalingState
  }

  get selectedCandidatePair() {
    return this[NATIVE].selectedCandidatePair
  }

  get localDescription() {
    return this[NATIVE].localDescription
  }

  get maxMessageSize() {
    return this[NATIVE].maxMessageSize
  }

  createDataChannel(label, options) {
    return new RTCDataChannel(INTERNAL, this[NATIVE].createDataChannel(label, options))
  }

  createOffer() {
    return settle(() => this[NATIVE].createOffer())
  }

  createAnswer() {
    return settle(() => this[NATIVE].createAnswer())
  }

  setLocalDescription(description) {
    return settle(() => this[NATIVE].setLocalDescription(description))
  }

  setRemoteDescription(description) {
    return settle(() => this[NATIVE].setRemoteDescription(description))
  }

  addIceCandidate(candidate) {
    return settle(() => this[NATIVE].addIceCandidate(candidate))
  }

  restartIce() {
    return settle(() => this[NATIVE].restartIce())
  }

  getSctpStats() {
    return settle(() => this[NATIVE].getSctpStats())
  }

  close() {
    return settle(() => this[NATIVE].close())
  }
}
defineHandlers(RTCPeerConnection, [
  'icecandidate',
  'connectionstatechange',
  'iceconnectionstatechange',
  'icegatheringstatechange',
  'signalingstatechange',
  'selectedcandidatepairchange',
  'datachannel',
])

module.exports = {
  PionIpc,
  RTCPeerConnection,
  RTCDataChannel,
  PeerConnection: RTCPeerConnection,
  DataChannel: RTCDataChannel,
  DataChannelStream,
  createDataChannelStream,
}
