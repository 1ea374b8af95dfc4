'use strict'

// RTCDataChannel of the standard API: an EventTarget over the SDK's channel (index.js),
// whose state is the core's. Here only the shaping: events as Event/MessageEvent objects,
// binaryType, Blob sends in order, spec-named errors.

const { Blob } = require('node:buffer')
const { defineHandlers, domException, standard, RTCError, RTCErrorEvent } = require('./events.js')

const INNER = Symbol('pion-node-rs.inner')
const NATIVE = Symbol.for('pion-node-rs.native')
const CONSTRUCT = Symbol('pion-node-rs.construct')
/** The SDK channel a standard one wraps, for lib/stream.js. */
const SDK_CHANNEL = Symbol.for('pion-node-rs.sdkChannel')

const BINARY_TYPES = new Set(['arraybuffer', 'blob'])

class RTCDataChannel extends EventTarget {
  #binaryType = 'arraybuffer'
  /** Sends waiting behind a Blob being read, in order; their bytes count as buffered. */
  #pending = []
  #pendingBytes = 0
  #closingFired = false
  #closed = false
  /** A send took bufferedAmount above the threshold: the next fall to it fires
   * bufferedamountlow (the sidecar also reports an idle, empty buffer, trap 8). */
  #aboveThreshold = false

  constructor(key, inner) {
    super()
    if (key !== CONSTRUCT) throw new TypeError('Illegal constructor: use RTCPeerConnection.createDataChannel()')
    this[INNER] = inner
    inner.on('open', () => this.dispatchEvent(new Event('open')))
    inner.on('message', ({ data }) => this.#message(data))
    inner.on('bufferedamountlow', () => {
      if (!this.#aboveThreshold) return
      this.#aboveThreshold = false
      this.dispatchEvent(new Event('bufferedamountlow'))
    })
    inner.on('error', (err) => {
      const error = new RTCError({ errorDetail: 'data-channel-failure' }, err?.message ?? String(err))
      this.dispatchEvent(new RTCErrorEvent('error', { error }))
    })
    inner.on('close', () => this.#onClose())
  }

  get [SDK_CHANNEL]() {
    return this[INNER]
  }
  get label() {
    return this[INNER].label
  }
  get ordered() {
    return this[INNER].ordered
  }
  /** The sidecar reports no stream ids (its `dc.create` takes only label and ordered). */
  get id() {
    return null
  }
  get protocol() {
    return ''
  }
  get negotiated() {
    return false
  }
  get maxRetransmits() {
    return null
  }
  get maxPacketLifeTime() {
    return null
  }
  get priority() {
    return 'low'
  }
  /** The core's state, except that a channel reads 'closing' until its close event (the
   * core is 'closed' at once when nothing is queued). */
  get readyState() {
    const state = this[INNER].readyState
    return state === 'closed' && !this.#closed ? 'closing' : state
  }
  get bufferedAmount() {
    return this[INNER].bufferedAmount + this.#pendingBytes
  }
  get bufferedAmountLowThreshold() {
    return this[INNER].bufferedAmountLowThreshold
  }
  set bufferedAmountLowThreshold(value) {
    standard(() => {
      this[INNER].bufferedAmountLowThreshold = value
    })
  }
  get binaryType() {
    return this.#binaryType
  }
  set binaryType(value) {
    // An enumeration attribute ignores values outside it.
    if (BINARY_TYPES.has(value)) this.#binaryType = value
  }

  /** What the SDK counted (for getStats()). */
  get _counters() {
    return this[INNER][NATIVE].counters
  }

  send(data) {
    if (this.readyState !== 'open') {
      throw domException('InvalidStateError', `RTCDataChannel.readyState is '${this.readyState}', not 'open'`)
    }
    if (data instanceof Blob) {
      if (data.size > 65535) throw new TypeError(`message of ${data.size} bytes exceeds maxMessageSize (65535 bytes)`)
      this.#queue(data.arrayBuffer(), data.size)
      return
    }
    if (this.#pending.length > 0) {
      // Behind a Blob: copied now (the caller may reuse its buffer), sent in order.
      const copy = typeof data === 'string' ? data : copyBytes(data)
      const size = typeof copy === 'string' ? Buffer.byteLength(copy) : copy.byteLength
      if (size > 65535) throw new TypeError(`message of ${size} bytes exceeds maxMessageSize (65535 bytes)`)
      this.#queue(Promise.resolve(copy), size)
      return
    }
    standard(() => this[INNER].send(data))
    this.#sent()
  }

  /** Once above, nothing is read again until the low event: a burst of sends costs the two
   * native reads only until the first one goes over. */
  #sent() {
    if (!this.#aboveThreshold && this.bufferedAmount > this.bufferedAmountLowThreshold) this.#aboveThreshold = true
  }

  #queue(promise, size) {
    const item = { promise, size }
    this.#pending.push(item)
    this.#pendingBytes += size
    this.#sent()
    promise.catch(() => {})
    if (this.#pending.length === 1) this.#drain()
  }

  async #drain() {
    while (this.#pending.length > 0) {
      const item = this.#pending[0]
      let data
      try {
        data = await item.promise
      } catch (err) {
        data = undefined
        this.#fail(`a Blob could not be read: ${err?.message ?? err}`)
      }
      this.#pending.shift()
      this.#pendingBytes -= item.size
      if (data === undefined || this.readyState !== 'open') continue
      try {
        this[INNER].send(data)
      } catch (err) {
        this.#fail(err?.message ?? String(err))
      }
    }
  }

  #fail(message) {
    const error = new RTCError({ errorDetail: 'data-channel-failure' }, message)
    this.dispatchEvent(new RTCErrorEvent('error', { error }))
  }

  #message(data) {
    if (typeof data !== 'string') {
      // A Buffer (maybe a slice of a shared pool): the message's own bytes.
      const bytes = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)
      data = this.#binaryType === 'blob' ? new Blob([bytes]) : bytes
    }
    this.dispatchEvent(new MessageEvent('message', { data }))
  }

  #onClose() {
    if (this.#closed) return
    this.#pending.length = 0
    this.#pendingBytes = 0
    this.#fireClosing() // readyState 'closing' while it is dispatched
    this.#closed = true
    this.dispatchEvent(new Event('close'))
  }

  #fireClosing() {
    if (this.#closingFired) return
    this.#closingFired = true
    this.dispatchEvent(new Event('closing'))
  }

  /** Synchronous: readyState is 'closing' at once; 'close' fires later. No 'closing' event:
   * it announces a close this side did not ask for (WebRTC 1.0, the closing procedure
   * "unless the procedure was initiated by channel.close()"; Chromium alike). */
  close() {
    const state = this.readyState
    if (state === 'closing' || state === 'closed') return
    this.#closingFired = true
    this[INNER].close().catch(() => {})
  }
}
defineHandlers(RTCDataChannel, ['open', 'message', 'bufferedamountlow', 'error', 'closing', 'close'])

function copyBytes(data) {
  if (data instanceof ArrayBuffer) return data.slice(0)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()
  return String(data)
}

function wrapChannel(inner) {
  return new RTCDataChannel(CONSTRUCT, inner)
}

module.exports = { RTCDataChannel, wrapChannel }
