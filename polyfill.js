'use strict'

// pion-node-rs/polyfill: the standard WebRTC API (W3C RTCPeerConnection, RTCDataChannel and
// their value and event classes) over the same core as the SDK's API. No set-up: the first
// connection starts a sidecar for this JavaScript thread, stopped again once no connection
// uses it. `configure()` chooses another; `installGlobals()` puts the classes on globalThis.

const { RTCPeerConnection } = require('./lib/polyfill/peer-connection.js')
const { RTCDataChannel } = require('./lib/polyfill/data-channel.js')
const { RTCStatsReport } = require('./lib/polyfill/stats.js')
const { configure } = require('./lib/polyfill/sidecar.js')
const { DataChannelStream, createDataChannelStream } = require('./lib/stream.js')
const {
  RTCSessionDescription,
  RTCIceCandidate,
  RTCPeerConnectionIceEvent,
  RTCDataChannelEvent,
  RTCError,
  RTCErrorEvent,
} = require('./lib/polyfill/events.js')

const classes = {
  RTCPeerConnection,
  RTCDataChannel,
  RTCSessionDescription,
  RTCIceCandidate,
  RTCPeerConnectionIceEvent,
  RTCDataChannelEvent,
  RTCError,
  RTCErrorEvent,
  RTCStatsReport,
}

/** Defines the standard classes on `target` (globalThis by default), for code written for
 * browsers; those it already has are kept unless `overwrite` is true. Returns `target`. */
function installGlobals(target = globalThis, { overwrite = false } = {}) {
  for (const [name, value] of Object.entries(classes)) {
    if (overwrite || target[name] === undefined) {
      Object.defineProperty(target, name, { value, writable: true, configurable: true, enumerable: false })
    }
  }
  return target
}

module.exports = { ...classes, configure, installGlobals, DataChannelStream, createDataChannelStream }
