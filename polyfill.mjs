// ESM entry of pion-node-rs/polyfill: the same classes as the CommonJS entry.
import polyfill from './polyfill.js'

export const {
  RTCPeerConnection,
  RTCDataChannel,
  RTCSessionDescription,
  RTCIceCandidate,
  RTCPeerConnectionIceEvent,
  RTCDataChannelEvent,
  RTCError,
  RTCErrorEvent,
  RTCStatsReport,
  configure,
  installGlobals,
  DataChannelStream,
  createDataChannelStream,
} = polyfill
export default polyfill
