'use strict'

// A Duplex stream over an RTCDataChannel of either API (the SDK's, index.js, or the
// standard one, pion-node-rs/polyfill). Each write becomes messages of at most
// maxMessageSize bytes; each message read becomes a chunk. Both directions are bounded:
// - writing: a write's callback waits while the channel's bufferedAmount is over
//   `bufferedAmountHighWaterMark`, until `bufferedamountlow` (the threshold is set to half of
//   it);
// - reading: when push() says the reader has enough, the channel is paused natively: its
//   events wait in the core (in order, close included) and count as undelivered, so that
//   past the addon's bound the sidecar's stdout is left unread and SCTP slows the remote
//   sender. Reading on resumes it.
// end() closes the channel once every write is queued (the channel's close drains its
// queue first); the channel's close ends the readable side; destroy() closes it too.

const { Duplex } = require('node:stream')

const NATIVE = Symbol.for('pion-node-rs.native')
const SDK_CHANNEL = Symbol.for('pion-node-rs.sdkChannel')
const MAX_MESSAGE_SIZE = 65535
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024

/** The SDK channel under `channel` (itself, or the one a standard RTCDataChannel wraps). */
function sdkChannel(channel) {
  const inner = channel !== null && typeof channel === 'object' ? (channel[SDK_CHANNEL] ?? channel) : null
  if (inner === null || typeof inner.on !== 'function' || inner[NATIVE] === undefined) {
    throw new TypeError('DataChannelStream: an RTCDataChannel of pion-node-rs is required')
  }
  return inner
}

/** `bytes` cut into messages of at most MAX_MESSAGE_SIZE bytes. */
function binaryPieces(bytes) {
  if (bytes.length <= MAX_MESSAGE_SIZE) return [bytes]
  const pieces = []
  for (let at = 0; at < bytes.length; at += MAX_MESSAGE_SIZE) pieces.push(bytes.subarray(at, at + MAX_MESSAGE_SIZE))
  return pieces
}

/** `text` cut into messages of at most MAX_MESSAGE_SIZE UTF-8 bytes, between characters. */
function textPieces(text) {
  if (text.length * 3 <= MAX_MESSAGE_SIZE) return [text]
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length <= MAX_MESSAGE_SIZE) return [text]
  const pieces = []
  let at = 0
  while (at < bytes.length) {
    let end = Math.min(at + MAX_MESSAGE_SIZE, bytes.length)
    // Back to the start of a character (never inside a UTF-8 sequence).
    while (end < bytes.length && (bytes[end] & 0xc0) === 0x80) end--
    pieces.push(bytes.toString('utf8', at, end))
    at = end
  }
  return pieces
}

function checkOptions(options) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object') throw new TypeError('DataChannelStream: options must be an object')
  const hwm = options.bufferedAmountHighWaterMark
  if (hwm !== undefined && !(Number.isInteger(hwm) && hwm > 0)) {
    throw new RangeError('DataChannelStream: bufferedAmountHighWaterMark must be a positive integer')
  }
  return options
}

class DataChannelStream extends Duplex {
  #channel
  #native
  #objectMode
  #highWaterMark
  /** A write waiting for the channel to open or to drain below the high-water mark. */
  #waiting = null
  #listeners

  /**
   * @param channel an RTCDataChannel of either API
   * @param options Duplex options, and `objectMode` (chunks are strings for text messages
   *   and Buffers for binary ones, one per message, none split) and
   *   `bufferedAmountHighWaterMark` (bytes; default 1 MiB)
   */
  constructor(channel, options) {
    const inner = sdkChannel(channel)
    const opts = checkOptions(options)
    const objectMode = opts.objectMode === true
    super({
      ...opts,
      objectMode,
      // Strings stay strings, so that they go as text messages.
      decodeStrings: false,
      allowHalfOpen: false,
    })
    this.#channel = inner
    this.#native = inner[NATIVE]
    this.#objectMode = objectMode
    this.#highWaterMark = opts.bufferedAmountHighWaterMark ?? DEFAULT_HIGH_WATER_MARK
    inner.bufferedAmountLowThreshold = Math.floor(this.#highWaterMark / 2)
    this.#listeners = {
      open: () => this.#wakeWriter(),
      bufferedamountlow: () => this.#wakeWriter(),
      message: ({ data }) => this.#onMessage(data),
      error: (err) => this.destroy(err instanceof Error ? err : new Error(String(err))),
      close: () => this.#onClose(),
    }
    for (const [name, fn] of Object.entries(this.#listeners)) inner.on(name, fn)
    if (inner.readyState === 'closed') queueMicrotask(() => this.#onClose())
  }

  /** The SDK channel this stream reads and writes. */
  get channel() {
    return this.#channel
  }

  #onMessage(data) {
    const chunk = this.#objectMode || typeof data !== 'string' ? data : Buffer.from(data, 'utf8')
    if (!this.push(chunk)) this.#native.pause()
  }

  #onClose() {
    this.#wakeWriter(new Error('DataChannelStream: the channel closed'))
    this.push(null)
  }

  #wakeWriter(error) {
    const waiting = this.#waiting
    if (waiting === null) return
    if (error === undefined && this.#channel.readyState === 'connecting') return
    if (error === undefined && this.#channel.bufferedAmount > this.#highWaterMark) return
    this.#waiting = null
    waiting(error)
  }

  _read() {
    if (this.#native.paused) this.#native.resume()
  }

  _write(chunk, encoding, callback) {
    if (typeof chunk !== 'string' && !ArrayBuffer.isView(chunk) && !(chunk instanceof ArrayBuffer)) {
      callback(new TypeError('DataChannelStream: a chunk must be a string, a Buffer, a TypedArray, a DataView or an ArrayBuffer'))
      return
    }
    const state = this.#channel.readyState
    if (state === 'connecting') {
      this.#waiting = (error) => (error ? callback(error) : this._write(chunk, encoding, callback))
      return
    }
    if (state !== 'open') {
      callback(new Error(`DataChannelStream: cannot write, the channel is '${state}'`))
      return
    }
    try {
      if (typeof chunk === 'string') {
        const text = encoding === 'utf8' || encoding === 'utf-8' || encoding === 'buffer' ? chunk : Buffer.from(chunk, encoding).toString('utf8')
        for (const piece of this.#objectMode ? [text] : textPieces(text)) this.#channel.send(piece)
      } else {
        const bytes = chunk instanceof ArrayBuffer ? new Uint8Array(chunk) : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        for (const piece of this.#objectMode ? [bytes] : binaryPieces(bytes)) this.#channel.send(piece)
      }
    } catch (err) {
      callback(err)
      return
    }
    if (this.#channel.bufferedAmount > this.#highWaterMark) {
      this.#waiting = (error) => callback(error)
      return
    }
    callback()
  }

  _final(callback) {
    const state = this.#channel.readyState
    if (state === 'closed') {
      callback()
      return
    }
    this.#channel.close().then(
      () => callback(),
      (err) => callback(err),
    )
  }

  _destroy(error, callback) {
    for (const [name, fn] of Object.entries(this.#listeners)) this.#channel.off(name, fn)
    // Whatever was held is let go (nobody listens any more), and the channel closes.
    this.#native.resume()
    const waiting = this.#waiting
    this.#waiting = null
    if (waiting) waiting(error ?? new Error('DataChannelStream: destroyed'))
    const state = this.#channel.readyState
    if (state === 'open' || state === 'connecting') this.#channel.close().catch(() => {})
    callback(error)
  }
}

/** `new DataChannelStream(channel, options)`. */
function createDataChannelStream(channel, options) {
  return new DataChannelStream(channel, options)
}

module.exports = { DataChannelStream, createDataChannelStream, MAX_MESSAGE_SIZE }
