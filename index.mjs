// ESM entry: the same classes as the CommonJS entry.
import binding from './index.js'

export const { PionIpc, RTCPeerConnection, RTCDataChannel, PeerConnection, DataChannel, DataChannelStream, createDataChannelStream } = binding
export default binding
