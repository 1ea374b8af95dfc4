'use strict'

// The standard API's value and event classes, and on<event> attributes for EventTargets.

class RTCSessionDescription {
  #type
  #sdp
  constructor(init = {}) {
    this.#type = init.type
    this.#sdp = init.sdp ?? ''
  }
  get type() {
    return this.#type
  }
  get sdp() {
    return this.#sdp
  }
  toJSON() {
    return { type: this.#type, sdp: this.#sdp }
  }
}

/** The parts of a candidate line (RFC 8839, 5.1): foundation, component, transport,
 * priority, address, port, type, then name/value pairs. */
function parseCandidate(line) {
  const fields = line.replace(/^a=/, '').replace(/^candidate:/, '').trim().split(/\s+/)
  if (fields.length < 8 || fields[6] !== 'typ') return null
  const extra = {}
  for (let i = 8; i + 1 < fields.length; i += 2) extra[fields[i]] = fields[i + 1]
  return {
    foundation: fields[0],
    component: fields[1] === '1' ? 'rtp' : fields[1] === '2' ? 'rtcp' : null,
    protocol: fields[2].toLowerCase(),
    priority: Number(fields[3]),
    address: fields[4],
    port: Number(fields[5]),
    type: fields[7],
    tcpType: extra.tcptype ?? null,
    relatedAddress: extra.raddr ?? null,
    relatedPort: extra.rport === undefined ? null : Number(extra.rport),
    usernameFragment: extra.ufrag ?? null,
  }
}

class RTCIceCandidate {
  #init
  #parsed
  constructor(init = {}) {
    const sdpMid = init.sdpMid ?? null
    const sdpMLineIndex = init.sdpMLineIndex ?? null
    if (sdpMid === null && sdpMLineIndex === null) {
      throw new TypeError("RTCIceCandidate: sdpMid and sdpMLineIndex can't both be null")
    }
    const candidate = String(init.candidate ?? '')
    this.#init = { candidate, sdpMid, sdpMLineIndex, usernameFragment: init.usernameFragment ?? null }
    this.#parsed = candidate === '' ? null : parseCandidate(candidate)
  }
  get candidate() {
    return this.#init.candidate
  }
  get sdpMid() {
    return this.#init.sdpMid
  }
  get sdpMLineIndex() {
    return this.#init.sdpMLineIndex
  }
  get usernameFragment() {
    return this.#init.usernameFragment ?? this.#parsed?.usernameFragment ?? null
  }
  get foundation() {
    return this.#parsed?.foundation ?? null
  }
  get component() {
    return this.#parsed?.component ?? null
  }
  get priority() {
    return this.#parsed?.priority ?? null
  }
  get address() {
    return this.#parsed?.address ?? null
  }
  get protocol() {
    return this.#parsed?.protocol ?? null
  }
  get port() {
    return this.#parsed?.port ?? null
  }
  get type() {
    return this.#parsed?.type ?? null
  }
  get tcpType() {
    return this.#parsed?.tcpType ?? null
  }
  get relatedAddress() {
    return this.#parsed?.relatedAddress ?? null
  }
  get relatedPort() {
    return this.#parsed?.relatedPort ?? null
  }
  toJSON() {
    const { candidate, sdpMid, sdpMLineIndex } = this.#init
    return { candidate, sdpMid, sdpMLineIndex, usernameFragment: this.usernameFragment }
  }
}

class RTCPeerConnectionIceEvent extends Event {
  #candidate
  constructor(type, init = {}) {
    super(type, init)
    this.#candidate = init.candidate ?? null
  }
  get candidate() {
    return this.#candidate
  }
  /** Deprecated in the spec; browsers still have it. */
  get url() {
    return null
  }
}

class RTCDataChannelEvent extends Event {
  #channel
  constructor(type, init) {
    super(type, init)
    if (!init || init.channel === undefined) throw new TypeError("RTCDataChannelEvent: 'channel' is required")
    this.#channel = init.channel
  }
  get channel() {
    return this.#channel
  }
}

const ERROR_DETAILS = new Set([
  'data-channel-failure',
  'dtls-failure',
  'fingerprint-failure',
  'sctp-failure',
  'sdp-syntax-error',
  'hardware-encoder-not-available',
  'hardware-encoder-error',
])

class RTCError extends DOMException {
  #detail
  #init
  constructor(init, message = '') {
    super(message, 'OperationError')
    if (!init || !ERROR_DETAILS.has(init.errorDetail)) throw new TypeError('RTCError: errorDetail must be an RTCErrorDetailType')
    this.#detail = init.errorDetail
    this.#init = init
  }
  get errorDetail() {
    return this.#detail
  }
  get sdpLineNumber() {
    return this.#init.sdpLineNumber ?? null
  }
  get sctpCauseCode() {
    return this.#init.sctpCauseCode ?? null
  }
  get receivedAlert() {
    return this.#init.receivedAlert ?? null
  }
  get sentAlert() {
    return this.#init.sentAlert ?? null
  }
  get httpRequestStatusCode() {
    return this.#init.httpRequestStatusCode ?? null
  }
}

class RTCErrorEvent extends Event {
  #error
  constructor(type, init) {
    super(type, init)
    if (!init || !(init.error instanceof RTCError)) throw new TypeError("RTCErrorEvent: 'error' must be an RTCError")
    this.#error = init.error
  }
  get error() {
    return this.#error
  }
}

/** on<event> attributes: one handler per event, called in order with the listeners added
 * before it was first set (the spec's event handler semantics). */
function defineHandlers(Class, names) {
  for (const name of names) {
    const slot = Symbol(`on${name}`)
    Object.defineProperty(Class.prototype, `on${name}`, {
      configurable: true,
      enumerable: true,
      get() {
        return this[slot]?.handler ?? null
      },
      set(handler) {
        const fn = typeof handler === 'function' || (typeof handler === 'object' && handler !== null) ? handler : null
        if (this[slot] === undefined) {
          if (fn === null) return
          const box = { handler: fn }
          this[slot] = box
          this.addEventListener(name, (event) => {
            const h = box.handler
            if (typeof h !== 'function') return
            const result = h.call(this, event)
            if (result === false && event.cancelable) event.preventDefault()
          })
        } else {
          this[slot].handler = fn
        }
      },
    })
  }
}

function domException(name, message) {
  return new DOMException(message, name)
}

/** A native error as the spec names it: InvalidStateError and OperationError become
 * DOMExceptions; TypeError and RangeError stay as they are. */
function standardError(err) {
  if (!(err instanceof Error)) return err
  if (err.name === 'OperationError') return domException('OperationError', err.message)
  const m = /^InvalidStateError: (.*)$/s.exec(err.message)
  if (m) return domException('InvalidStateError', m[1])
  return err
}

/** Runs `fn`, throwing what it throws as the spec names it. */
function standard(fn) {
  try {
    return fn()
  } catch (err) {
    throw standardError(err)
  }
}

module.exports = {
  RTCSessionDescription,
  RTCIceCandidate,
  RTCPeerConnectionIceEvent,
  RTCDataChannelEvent,
  RTCError,
  RTCErrorEvent,
  defineHandlers,
  domException,
  standard,
  standardError,
  parseCandidate,
}
