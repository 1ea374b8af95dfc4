// Types of pion-node-rs/polyfill: the standard WebRTC API (data channels only).
//
// The classes are typed as lib.dom's own, so that code written for a browser's
// RTCPeerConnection type-checks unchanged against this module. What the sidecar cannot do
// (media, negotiated channels, partial reliability, certificates) is still in those types and
// throws NotSupportedError at run time; README "Standard API" has the table. What this library
// adds is the configuration's `pionIpc`, `settings` and `candidateHold`, and `configure()`.

/// <reference lib="dom" />

import type { PionIpc, PionIpcOptions, PionSettings, DataChannelStream, createDataChannelStream } from './index.js'
export { DataChannelStream, createDataChannelStream, type DataChannelStreamOptions } from './index.js'

/** The standard configuration, plus what this library adds. */
export interface PionRTCConfiguration extends globalThis.RTCConfiguration {
  /** pion-node-rs: a PionIpc to use instead of this thread's default sidecar. */
  pionIpc?: PionIpc
  /** pion-node-rs: the sidecar's SettingEngine knobs. */
  settings?: PionSettings
  /** pion-node-rs: the offerer's candidate hold (see RTCPeerConnectionOptions in the SDK). */
  candidateHold?: boolean | { timeoutMs?: number }
}

export type RTCPeerConnection = globalThis.RTCPeerConnection
export declare const RTCPeerConnection: {
  prototype: globalThis.RTCPeerConnection
  new (configuration?: PionRTCConfiguration): globalThis.RTCPeerConnection
  /** Rejects with NotSupportedError: the sidecar makes its own certificate. */
  generateCertificate(keygenAlgorithm: AlgorithmIdentifier): Promise<RTCCertificate>
}
/** Made only by createDataChannel() and the 'datachannel' event; `new` throws TypeError. */
export type RTCDataChannel = globalThis.RTCDataChannel
export declare const RTCDataChannel: typeof globalThis.RTCDataChannel
export type RTCSessionDescription = globalThis.RTCSessionDescription
export declare const RTCSessionDescription: typeof globalThis.RTCSessionDescription
export type RTCIceCandidate = globalThis.RTCIceCandidate
export declare const RTCIceCandidate: typeof globalThis.RTCIceCandidate
export type RTCPeerConnectionIceEvent = globalThis.RTCPeerConnectionIceEvent
export declare const RTCPeerConnectionIceEvent: typeof globalThis.RTCPeerConnectionIceEvent
export type RTCDataChannelEvent = globalThis.RTCDataChannelEvent
export declare const RTCDataChannelEvent: typeof globalThis.RTCDataChannelEvent
export type RTCError = globalThis.RTCError
export declare const RTCError: typeof globalThis.RTCError
export type RTCErrorEvent = globalThis.RTCErrorEvent
export declare const RTCErrorEvent: typeof globalThis.RTCErrorEvent
/** A Map of id → stats object ({ id, type, timestamp, … }). */
export type RTCStatsReport = globalThis.RTCStatsReport
export declare const RTCStatsReport: typeof globalThis.RTCStatsReport

export interface ConfigureOptions extends PionIpcOptions {
  /** A PionIpc of yours for the next connections (started here if it is not; never stopped here). */
  ipc?: PionIpc | null
  /** How long the default sidecar lives on after its last connection closed, in ms. Default 1000. */
  idleMs?: number
}
/** Chooses the sidecar of the connections made after it. */
export declare function configure(options?: ConfigureOptions): void
/** Defines the standard classes on `target` (default globalThis); existing ones are kept unless `overwrite`. */
export declare function installGlobals<T extends object = typeof globalThis>(target?: T, options?: { overwrite?: boolean }): T

declare const polyfill: {
  RTCPeerConnection: typeof RTCPeerConnection
  RTCDataChannel: typeof RTCDataChannel
  RTCSessionDescription: typeof RTCSessionDescription
  RTCIceCandidate: typeof RTCIceCandidate
  RTCPeerConnectionIceEvent: typeof RTCPeerConnectionIceEvent
  RTCDataChannelEvent: typeof RTCDataChannelEvent
  RTCError: typeof RTCError
  RTCErrorEvent: typeof RTCErrorEvent
  RTCStatsReport: typeof RTCStatsReport
  configure: typeof configure
  installGlobals: typeof installGlobals
  DataChannelStream: typeof DataChannelStream
  createDataChannelStream: typeof createDataChannelStream
}
export default polyfill
