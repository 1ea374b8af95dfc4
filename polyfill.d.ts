// Types of pion-node-rs/polyfill: the standard WebRTC API (data channels only). The shapes
// follow lib.dom's; what this library adds is marked.

import type { PionIpc, PionIpcOptions, PionSettings } from './index.js'

export type RTCSdpType = 'offer' | 'answer' | 'pranswer' | 'rollback'
export interface RTCSessionDescriptionInit {
  type: RTCSdpType
  sdp?: string
}
export interface RTCIceCandidateInit {
  candidate?: string
  sdpMid?: string | null
  sdpMLineIndex?: number | null
  usernameFragment?: string | null
}
export interface RTCIceServer {
  urls: string | string[]
  username?: string
  credential?: string
}
export interface RTCConfiguration {
  iceServers?: RTCIceServer[]
  iceTransportPolicy?: 'all'
  bundlePolicy?: 'balanced' | 'max-compat' | 'max-bundle'
  iceCandidatePoolSize?: number
  /** pion-node-rs: a PionIpc to use instead of this thread's default sidecar. */
  pionIpc?: PionIpc
  /** pion-node-rs: the sidecar's SettingEngine knobs. */
  settings?: PionSettings
  /** pion-node-rs: the offerer's candidate hold (see RTCPeerConnectionOptions in the SDK). */
  candidateHold?: boolean | { timeoutMs?: number }
}
export interface RTCDataChannelInit {
  ordered?: boolean
  /** Not supported: throws NotSupportedError. */
  maxPacketLifeTime?: number
  /** Not supported: throws NotSupportedError. */
  maxRetransmits?: number
  /** Only '' is supported. */
  protocol?: string
  /** Only false is supported. */
  negotiated?: boolean
  /** Not supported: throws NotSupportedError. */
  id?: number
}

export declare class RTCSessionDescription {
  constructor(init: RTCSessionDescriptionInit)
  readonly type: RTCSdpType
  readonly sdp: string
  toJSON(): RTCSessionDescriptionInit
}

export declare class RTCIceCandidate {
  constructor(init?: RTCIceCandidateInit)
  readonly candidate: string
  readonly sdpMid: string | null
  readonly sdpMLineIndex: number | null
  readonly usernameFragment: string | null
  readonly foundation: string | null
  readonly component: 'rtp' | 'rtcp' | null
  readonly priority: number | null
  readonly address: string | null
  readonly protocol: string | null
  readonly port: number | null
  readonly type: string | null
  readonly tcpType: string | null
  readonly relatedAddress: string | null
  readonly relatedPort: number | null
  toJSON(): RTCIceCandidateInit
}

export declare class RTCPeerConnectionIceEvent extends Event {
  constructor(type: string, init?: EventInit & { candidate?: RTCIceCandidate | null })
  readonly candidate: RTCIceCandidate | null
}
export declare class RTCDataChannelEvent extends Event {
  constructor(type: string, init: EventInit & { channel: RTCDataChannel })
  readonly channel: RTCDataChannel
}
export type RTCErrorDetailType =
  | 'data-channel-failure'
  | 'dtls-failure'
  | 'fingerprint-failure'
  | 'sctp-failure'
  | 'sdp-syntax-error'
  | 'hardware-encoder-not-available'
  | 'hardware-encoder-error'
export declare class RTCError extends DOMException {
  constructor(init: { errorDetail: RTCErrorDetailType }, message?: string)
  readonly errorDetail: RTCErrorDetailType
  readonly sdpLineNumber: number | null
  readonly sctpCauseCode: number | null
  readonly receivedAlert: number | null
  readonly sentAlert: number | null
  readonly httpRequestStatusCode: number | null
}
export declare class RTCErrorEvent extends Event {
  constructor(type: string, init: EventInit & { error: RTCError })
  readonly error: RTCError
}
/** Map-like: id → stats object ({ id, type, timestamp, … }). */
export declare class RTCStatsReport extends Map<string, Record<string, unknown> & { id: string; type: string; timestamp: number }> {}

type Handler<E extends Event> = ((this: unknown, event: E) => unknown) | null

export declare class RTCDataChannel extends EventTarget {
  private constructor()
  readonly label: string
  readonly ordered: boolean
  /** Always null: the sidecar does not report stream ids. */
  readonly id: number | null
  readonly protocol: string
  readonly negotiated: boolean
  readonly maxRetransmits: number | null
  readonly maxPacketLifeTime: number | null
  readonly readyState: 'connecting' | 'open' | 'closing' | 'closed'
  readonly bufferedAmount: number
  bufferedAmountLowThreshold: number
  binaryType: 'arraybuffer' | 'blob'
  send(data: string | Blob | ArrayBuffer | ArrayBufferView): void
  close(): void
  onopen: Handler<Event>
  onmessage: Handler<MessageEvent>
  onbufferedamountlow: Handler<Event>
  onerror: Handler<RTCErrorEvent>
  onclosing: Handler<Event>
  onclose: Handler<Event>
}

export type RTCPeerConnectionState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed'
export type RTCIceConnectionState = 'new' | 'checking' | 'connected' | 'completed' | 'disconnected' | 'failed' | 'closed'
export type RTCSignalingState = 'stable' | 'have-local-offer' | 'have-remote-offer' | 'have-local-pranswer' | 'have-remote-pranswer' | 'closed'

export declare class RTCPeerConnection extends EventTarget {
  constructor(configuration?: RTCConfiguration)
  readonly connectionState: RTCPeerConnectionState
  readonly iceConnectionState: RTCIceConnectionState
  readonly iceGatheringState: 'new' | 'gathering' | 'complete'
  readonly signalingState: RTCSignalingState
  /** With the gathered candidates, and a=end-of-candidates once gathering is complete. */
  readonly localDescription: RTCSessionDescription | null
  readonly currentLocalDescription: RTCSessionDescription | null
  readonly pendingLocalDescription: RTCSessionDescription | null
  readonly remoteDescription: RTCSessionDescription | null
  readonly currentRemoteDescription: RTCSessionDescription | null
  readonly pendingRemoteDescription: RTCSessionDescription | null
  readonly canTrickleIceCandidates: boolean | null
  readonly sctp: null
  createOffer(options?: { iceRestart?: boolean }): Promise<RTCSessionDescriptionInit & { sdp: string }>
  createAnswer(): Promise<RTCSessionDescriptionInit & { sdp: string }>
  setLocalDescription(description?: RTCSessionDescriptionInit): Promise<void>
  setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void>
  addIceCandidate(candidate?: RTCIceCandidateInit | null): Promise<void>
  restartIce(): void
  createDataChannel(label: string, options?: RTCDataChannelInit): RTCDataChannel
  getConfiguration(): RTCConfiguration
  /** Throws NotSupportedError for any change: the sidecar takes the configuration only at creation. */
  setConfiguration(configuration?: RTCConfiguration): void
  getStats(): Promise<RTCStatsReport>
  close(): void
  onicecandidate: Handler<RTCPeerConnectionIceEvent>
  onicecandidateerror: Handler<Event>
  oniceconnectionstatechange: Handler<Event>
  onicegatheringstatechange: Handler<Event>
  onconnectionstatechange: Handler<Event>
  onsignalingstatechange: Handler<Event>
  onnegotiationneeded: Handler<Event>
  ondatachannel: Handler<RTCDataChannelEvent>
  ontrack: Handler<Event>
}

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
}
export default polyfill
