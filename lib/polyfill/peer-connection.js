'use strict'

// RTCPeerConnection of the standard API: an EventTarget over the SDK's connection
// (index.js), whose state (the four states, the descriptions with their candidates, the
// candidate hold) is the core's. Here only the shaping: the default sidecar, events as
// standard objects, the end-of-candidates event, negotiationneeded, restartIce(), spec-named
// errors, the support checks.

const { RTCPeerConnection: SdkPeerConnection } = require('../../index.js')
const { acquire } = require('./sidecar.js')
const { wrapChannel } = require('./data-channel.js')
const { buildReport } = require('./stats.js')
const {
  RTCSessionDescription,
  RTCIceCandidate,
  RTCPeerConnectionIceEvent,
  RTCDataChannelEvent,
  defineHandlers,
  domException,
  standard,
  standardError,
} = require('./events.js')

const NATIVE = Symbol.for('pion-node-rs.native')
const AFTER_START = Symbol.for('pion-node-rs.afterStart')

const closedError = () => domException('InvalidStateError', 'the RTCPeerConnection is closed')
const noMedia = (what) => domException('NotSupportedError', `${what}: media is not supported (the sidecar carries DataChannels only)`)

/** The legacy callback form of a negotiation method (WebRTC 1.0 section 4.4.3): the
 * promise's outcome goes to the callbacks, and the call resolves with undefined. */
function withCallbacks(call, onSuccess, onFailure) {
  if (typeof onFailure !== 'function') {
    return Promise.reject(new TypeError('the legacy callback form needs a failure callback'))
  }
  return call().then(
    (value) => void onSuccess(value),
    (err) => void onFailure(err),
  )
}

function normalizeIceServers(list) {
  if (list === undefined || list === null) return []
  if (!Array.isArray(list)) throw new TypeError('configuration.iceServers must be an array')
  return list.map((server, i) => {
    if (server === null || typeof server !== 'object') throw new TypeError(`iceServers[${i}] must be an object`)
    const urls = typeof server.urls === 'string' ? [server.urls] : server.urls
    if (!Array.isArray(urls) || urls.length === 0) throw new TypeError(`iceServers[${i}].urls is required`)
    for (const url of urls) {
      if (typeof url !== 'string' || !/^(stun|stuns|turn|turns):/.test(url)) {
        throw domException('SyntaxError', `iceServers[${i}].urls: ${JSON.stringify(url)} is not a stun:, stuns:, turn: or turns: URL`)
      }
    }
    const out = { urls: [...urls] }
    if (server.username !== undefined) out.username = String(server.username)
    if (server.credential !== undefined) out.credential = String(server.credential)
    return out
  })
}

/** The standard configuration this connection can honour; NotSupportedError names what
 * it cannot. */
function normalizeConfiguration(config) {
  if (config !== undefined && config !== null && typeof config !== 'object') {
    throw new TypeError('RTCPeerConnection: configuration must be an object')
  }
  const c = config ?? {}
  if (c.iceTransportPolicy !== undefined && c.iceTransportPolicy !== 'all') {
    throw domException('NotSupportedError', `iceTransportPolicy '${c.iceTransportPolicy}' is not supported (the sidecar gathers every candidate type)`)
  }
  if (c.certificates !== undefined && c.certificates.length > 0) {
    throw domException('NotSupportedError', 'certificates are not supported (the sidecar makes its own)')
  }
  if (c.peerIdentity !== undefined) throw domException('NotSupportedError', 'peerIdentity is not supported')
  return {
    iceServers: normalizeIceServers(c.iceServers),
    iceTransportPolicy: 'all',
    bundlePolicy: c.bundlePolicy ?? 'balanced',
    rtcpMuxPolicy: 'require',
    iceCandidatePoolSize: c.iceCandidatePoolSize ?? 0,
  }
}

const UNSUPPORTED_CHANNEL_OPTIONS = ['negotiated', 'id', 'maxRetransmits', 'maxPacketLifeTime']

/** createDataChannel()'s options that the sidecar's `dc.create { label, ordered }` cannot
 * carry throw NotSupportedError, naming the option. */
function channelOptions(init) {
  if (init === undefined || init === null) return {}
  if (typeof init !== 'object') throw new TypeError('createDataChannel: options must be an object')
  if (init.maxRetransmits != null && init.maxPacketLifeTime != null) {
    throw new TypeError('createDataChannel: maxRetransmits and maxPacketLifeTime cannot both be set')
  }
  for (const name of UNSUPPORTED_CHANNEL_OPTIONS) {
    const value = init[name]
    const set = name === 'negotiated' ? value === true : value !== undefined && value !== null
    if (set) throw domException('NotSupportedError', `createDataChannel: option '${name}' is not supported (the sidecar's dc.create takes only label and ordered)`)
  }
  if (init.protocol !== undefined && String(init.protocol) !== '') {
    throw domException('NotSupportedError', "createDataChannel: option 'protocol' is not supported (a non-empty protocol; the sidecar's dc.create takes only label and ordered)")
  }
  return init.ordered === undefined ? {} : { ordered: Boolean(init.ordered) }
}

const hasData = (d) => d !== null && /^m=application /m.test(d.sdp)

function description(d) {
  return d === null ? null : new RTCSessionDescription(d)
}

class RTCPeerConnection extends EventTarget {
  #inner
  #ready
  #sidecar
  #config
  #closed = false
  #restartIce = false
  #negotiationNeeded = false
  #negotiationQueued = false
  /** The iceGatheringState last reported (dispatched with its event). */
  #gathering = 'new'
  /** The signalingState last reported (dispatched with its event). */
  #signaling = 'stable'
  #channels = []
  #opened = 0
  #closedChannels = 0

  /**
   * `configuration`: the standard one, plus what this library adds: `pionIpc` (a PionIpc to
   * use instead of the default sidecar), `settings` (the sidecar's SettingEngine knobs) and
   * `candidateHold` (see the SDK's RTCPeerConnection).
   */
  constructor(configuration) {
    super()
    this.#config = normalizeConfiguration(configuration)
    const extra = configuration ?? {}
    this.#sidecar = acquire(extra.pionIpc ?? null)
    this.#ready = this.#sidecar.ready
    const options = { _ipc: this.#sidecar.ipc, iceServers: this.#config.iceServers, [AFTER_START]: true }
    if (extra.settings !== undefined) options.settings = extra.settings
    if (extra.candidateHold !== undefined) options.candidateHold = extra.candidateHold
    const inner = new SdkPeerConnection(options)
    this.#inner = inner
    inner.on('icecandidate', ({ candidate }) => {
      this.#gatheringEvent(() => {
        if (this.#closed) return
        this.dispatchEvent(new RTCPeerConnectionIceEvent('icecandidate', { candidate: new RTCIceCandidate(candidate) }))
      })
    })
    inner.on('icegatheringstatechange', () => {
      const state = inner.iceGatheringState
      const complete = state === 'complete'
      this.#gatheringEvent(() => {
        this.#gathering = state
        if (this.#closed) return
        this.dispatchEvent(new Event('icegatheringstatechange'))
        // The sidecar reports the end of gathering only as this state (PROTOCOL.md, trap 16).
        // The null candidate follows the state's event, as in "update the ICE gathering
        // state" (WebRTC 1.0) and in Chromium.
        if (complete && !this.#closed) {
          this.dispatchEvent(new RTCPeerConnectionIceEvent('icecandidate', { candidate: null }))
        }
      })
    })
    // The state comes from the accepted descriptions (the core's), so that it has moved when
    // the setter's promise resolves; the sidecar's event may come before or after that.
    inner.on('signalingstatechange', () => this.#signalingMoved())
    for (const name of ['connectionstatechange', 'iceconnectionstatechange']) {
      inner.on(name, () => {
        if (!this.#closed) this.dispatchEvent(new Event(name))
      })
    }
    // pion closes a connection by itself when the remote end closes it ('closed' without
    // close()). Nothing can happen on it any more: it is let go in the sidecar as close()
    // would, or an application that never calls close() on a connection it sees 'closed'
    // (trystero does not) would keep the sidecar, and so Node, running.
    inner.on('connectionstatechange', () => {
      if (!this.#closed && inner.connectionState === 'closed') this.#letGo()
    })
    inner.on('datachannel', ({ channel }) => {
      if (this.#closed) return
      // A browser announces a remote channel once it is open (readyState 'open' in the
      // datachannel event, its open event right after); the sidecar's dc.open follows its
      // datachannel event. Listening before the wrapper does puts datachannel first.
      let wrapped = null
      const announce = () => {
        if (!this.#closed) this.dispatchEvent(new RTCDataChannelEvent('datachannel', { channel: wrapped }))
      }
      if (channel.readyState === 'connecting') channel.once('open', announce)
      wrapped = this.#track(wrapChannel(channel))
      if (channel.readyState !== 'connecting') announce()
    })
  }

  get connectionState() {
    return this.#closed ? 'closed' : this.#inner.connectionState
  }
  get iceConnectionState() {
    return this.#closed ? 'closed' : this.#inner.iceConnectionState
  }
  /** The state of the last icegatheringstatechange dispatched (those events may wait for a
   * setLocalDescription() to resolve, see #gatheringEvent). */
  get iceGatheringState() {
    return this.#gathering
  }
  get signalingState() {
    return this.#closed ? 'closed' : this.#signaling
  }
  get localDescription() {
    return description(this.#inner[NATIVE].localDescription)
  }
  get currentLocalDescription() {
    return description(this.#inner[NATIVE].currentLocalDescription)
  }
  get pendingLocalDescription() {
    return description(this.#inner[NATIVE].pendingLocalDescription)
  }
  get remoteDescription() {
    return description(this.#inner[NATIVE].remoteDescription)
  }
  get currentRemoteDescription() {
    return description(this.#inner[NATIVE].currentRemoteDescription)
  }
  get pendingRemoteDescription() {
    return description(this.#inner[NATIVE].pendingRemoteDescription)
  }
  /** null before a remote description; then whether it offers trickle. */
  get canTrickleIceCandidates() {
    const remote = this.#inner[NATIVE].remoteDescription
    if (remote === null) return null
    return /^a=ice-options:.*\btrickle\b/m.test(remote.sdp)
  }
  get sctp() {
    return null
  }

  getConfiguration() {
    const c = this.#config
    return { ...c, iceServers: c.iceServers.map((s) => ({ ...s, urls: [...s.urls] })) }
  }

  /** The sidecar cannot change a connection after `pc.create`: a configuration that differs
   * throws NotSupportedError naming the field. */
  setConfiguration(configuration) {
    if (this.#closed) throw closedError()
    const next = normalizeConfiguration(configuration)
    for (const key of Object.keys(next)) {
      if (JSON.stringify(next[key]) !== JSON.stringify(this.#config[key])) {
        throw domException('NotSupportedError', `setConfiguration: changing '${key}' is not supported (the sidecar takes it only at creation)`)
      }
    }
  }

  /** A call of the SDK's once the sidecar is started, in the order of the calls. */
  #call(fn) {
    if (this.#closed) return Promise.reject(closedError())
    return this.#ready.then(() => {
      if (this.#closed) throw closedError()
      return fn(this.#inner)
    }).catch((err) => {
      throw standardError(err)
    })
  }

  createOffer(options, onFailure, legacyOptions) {
    if (typeof options === 'function') return withCallbacks(() => this.createOffer(legacyOptions), options, onFailure)
    const restart = this.#restartIce || options?.iceRestart === true
    return this.#call(async (inner) => {
      // restartIce(): this offer restarts ICE (the sidecar's pc.restartIce, trap 11: it
      // must be applied as it is, before another createOffer).
      const offer = restart ? await inner.restartIce() : await inner.createOffer()
      if (restart) this.#restartIce = false
      return { type: 'offer', sdp: offer.sdp }
    })
  }

  createAnswer(onSuccess, onFailure) {
    if (typeof onSuccess === 'function') return withCallbacks(() => this.createAnswer(), onSuccess, onFailure)
    return this.#call(async (inner) => {
      const answer = await inner.createAnswer()
      return { type: 'answer', sdp: answer.sdp }
    })
  }

  setLocalDescription(init, onSuccess, onFailure) {
    if (typeof onSuccess === 'function') return withCallbacks(() => this.setLocalDescription(init), onSuccess, onFailure)
    return this.#call(async (inner) => {
      let d = init
      if (d === undefined || d === null || !d.sdp) {
        // Implicit: an offer or an answer, as the signalling state asks.
        // Read from the descriptions the sidecar accepted: its signalingstatechange can
        // come after the answer to setRemoteDescription (PROTOCOL.md, trap 5).
        const answering = this.#inner[NATIVE].pendingRemoteDescription?.type === 'offer'
        const type = d?.type ?? (answering ? 'answer' : 'offer')
        if (type === 'rollback') d = { type, sdp: '' }
        else d = type === 'offer' ? await this.createOffer() : await inner.createAnswer()
        d = { type: d.type ?? type, sdp: d.sdp }
      }
      this.#gatheringHeld++
      try {
        await inner.setLocalDescription({ type: d.type, sdp: d.sdp })
        this.#settled()
      } finally {
        // After the code that awaited this promise has run, as a browser's events come in
        // tasks after the one that resolved it.
        setImmediate(() => this.#releaseGathering())
      }
    })
  }

  /** Gathering events that come while setLocalDescription() is pending: the sidecar can
   * report the answerer's candidates before it answers the request, and code that sends
   * the description once the promise resolves (simple-peer) must have it before them. */
  #gatheringHeld = 0
  #gatheringQueue = []
  #gatheringEvent(dispatch) {
    if (this.#gatheringHeld > 0) this.#gatheringQueue.push(dispatch)
    else dispatch()
  }
  #releaseGathering() {
    if (--this.#gatheringHeld > 0) return
    const queued = this.#gatheringQueue.splice(0)
    for (const dispatch of queued) dispatch()
  }

  setRemoteDescription(init, onSuccess, onFailure) {
    if (typeof onSuccess === 'function') return withCallbacks(() => this.setRemoteDescription(init), onSuccess, onFailure)
    if (init === undefined || init === null || typeof init !== 'object') {
      return Promise.reject(new TypeError('setRemoteDescription: a description { type, sdp } is required'))
    }
    const d = { type: init.type, sdp: init.sdp ?? '' }
    return this.#call(async (inner) => {
      await inner.setRemoteDescription(d)
      this.#settled()
    })
  }

  addIceCandidate(init, onSuccess, onFailure) {
    if (typeof onSuccess === 'function') return withCallbacks(() => this.addIceCandidate(init), onSuccess, onFailure)
    // No candidate, or an empty one: the remote's end of candidates; nothing to tell pion.
    if (init === undefined || init === null || !init.candidate) {
      return this.#call(async () => {})
    }
    if (init.sdpMid == null && init.sdpMLineIndex == null) {
      return Promise.reject(new TypeError('addIceCandidate: sdpMid and sdpMLineIndex cannot both be null'))
    }
    const c = { candidate: String(init.candidate) }
    if (init.sdpMid != null) c.sdpMid = String(init.sdpMid)
    if (init.sdpMLineIndex != null) c.sdpMLineIndex = init.sdpMLineIndex
    return this.#call(async (inner) => {
      await inner.addIceCandidate(c)
    })
  }

  /** The next createOffer() restarts ICE; negotiationneeded fires. */
  restartIce() {
    if (this.#closed) return
    this.#restartIce = true
    this.#needNegotiation()
  }

  createDataChannel(label, init) {
    if (this.#closed) throw closedError()
    if (arguments.length === 0) throw new TypeError('createDataChannel: a label is required')
    const name = String(label)
    const options = channelOptions(init)
    if (Buffer.byteLength(name) > 65535) throw new TypeError('createDataChannel: the label is longer than 65535 bytes')
    if (name === '') throw domException('NotSupportedError', 'createDataChannel: an empty label is not supported (the sidecar keys channels by label)')
    const inner = standard(() => this.#inner.createDataChannel(name, options))
    const channel = this.#track(wrapChannel(inner))
    // The first channel needs an SCTP association in the SDP.
    if (!hasData(this.#inner[NATIVE].currentLocalDescription) && !hasData(this.#inner[NATIVE].currentRemoteDescription)) {
      this.#needNegotiation()
    }
    return channel
  }

  #track(channel) {
    this.#channels.push(channel)
    channel.addEventListener('open', () => this.#opened++)
    channel.addEventListener('close', () => this.#closedChannels++)
    return channel
  }

  #needNegotiation() {
    this.#negotiationNeeded = true
    this.#maybeNegotiate()
  }

  /** negotiationneeded fires from a task, while stable, once per need. */
  #maybeNegotiate() {
    if (!this.#negotiationNeeded || this.#negotiationQueued) return
    this.#negotiationQueued = true
    setTimeout(() => {
      this.#negotiationQueued = false
      if (this.#closed || !this.#negotiationNeeded || this.signalingState !== 'stable') return
      this.#negotiationNeeded = false
      this.dispatchEvent(new Event('negotiationneeded'))
    }, 0)
  }

  /** signalingstatechange when the accepted descriptions imply another state. */
  #signalingMoved() {
    const now = this.#inner[NATIVE].describedSignalingState
    if (this.#closed || now === this.#signaling) return
    this.#signaling = now
    this.dispatchEvent(new Event('signalingstatechange'))
    if (now === 'stable') this.#maybeNegotiate()
  }

  /** A description was applied: the state moves before the promise resolves, and a
   * channel made before it is negotiated now. */
  #settled() {
    this.#signalingMoved()
    if (this.#restartIce) return
    if (hasData(this.#inner[NATIVE].localDescription) || hasData(this.#inner[NATIVE].remoteDescription)) {
      if (this.#signaling === 'stable') this.#negotiationNeeded = false
    }
  }

  getStats(...args) {
    if (args[0] !== undefined && args[0] !== null) {
      return Promise.reject(domException('NotSupportedError', 'getStats: a selector (track) is not supported'))
    }
    return this.#call(async (inner) => {
      let sctp = null
      try {
        sctp = await inner.getSctpStats()
      } catch {
        // not up, or going away: the report says what is known
      }
      return buildReport(
        {
          connectionState: this.connectionState,
          iceConnectionState: this.iceConnectionState,
          selectedCandidatePair: inner.selectedCandidatePair,
          channels: this.#channels,
          opened: this.#opened,
          closed: this.#closedChannels,
        },
        sctp,
      )
    })
  }

  // Media: the sidecar has no tracks. The getters answer honestly (none); the calls that
  // would add or remove media throw, never a silent no-op.
  getSenders() {
    return []
  }
  getReceivers() {
    return []
  }
  getTransceivers() {
    return []
  }
  addTrack() {
    throw noMedia('addTrack')
  }
  removeTrack() {
    throw noMedia('removeTrack')
  }
  addTransceiver() {
    throw noMedia('addTransceiver')
  }

  /** Certificates are the sidecar's own (one per connection, made by pion). */
  static generateCertificate() {
    return Promise.reject(domException('NotSupportedError', 'generateCertificate: certificates are made by the sidecar per connection and cannot be supplied'))
  }

  /** Synchronous: no event fires for it; the sidecar closes in the background, and the
   * default sidecar stops once no connection uses it for a while. */
  close() {
    if (this.#closed) return
    this.#closed = true
    this.#letGo()
  }

  #letGone = false
  /** Closes the SDK's connection, then releases the sidecar (once). */
  #letGo() {
    if (this.#letGone) return
    this.#letGone = true
    const release = this.#sidecar.release
    this.#inner.close().then(release, release)
  }
}
defineHandlers(RTCPeerConnection, [
  'icecandidate',
  'icecandidateerror',
  'iceconnectionstatechange',
  'icegatheringstatechange',
  'connectionstatechange',
  'signalingstatechange',
  'negotiationneeded',
  'datachannel',
  'track',
])

module.exports = { RTCPeerConnection }
