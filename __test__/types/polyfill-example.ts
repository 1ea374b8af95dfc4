// The standard API, typed: two peers in one process.
import { RTCPeerConnection, RTCDataChannel, configure } from 'pion-node-rs/polyfill'
import wrtc from 'pion-node-rs/polyfill'

configure({ idleMs: 500, logger: (line: string) => void line })
const a = new RTCPeerConnection({ iceServers: [{ urls: 'stun:stun.example.org' }], settings: { iceFailedTimeout: 5000 } })
const b = new wrtc.RTCPeerConnection()
a.onicecandidate = (e) => {
  if (e.candidate) void b.addIceCandidate(e.candidate.toJSON())
}
b.ondatachannel = (e) => {
  const ch: RTCDataChannel = e.channel
  ch.binaryType = 'arraybuffer'
  ch.onmessage = (m: MessageEvent) => ch.send(m.data as ArrayBuffer)
}
const dc = a.createDataChannel('chat', { ordered: true })
dc.addEventListener('open', () => dc.send(new Blob(['hi'])))
async function negotiate(): Promise<void> {
  const offer = await a.createOffer()
  offer.sdp = (offer.sdp ?? '').replace('a=ice-options:trickle\r\n', 'a=ice-options:trickle\r\n')
  await a.setLocalDescription(offer)
  await b.setRemoteDescription(offer)
  await b.setLocalDescription()
  const answer = b.localDescription
  if (answer) await a.setRemoteDescription(answer)
  const stats = await a.getStats()
  stats.forEach((s) => void s.type)
  a.close()
  b.close()
}
void negotiate()

// A Duplex over a standard channel.
import { createDataChannelStream, DataChannelStream } from 'pion-node-rs/polyfill'
const stream: DataChannelStream = createDataChannelStream(dc, { objectMode: true, bufferedAmountHighWaterMark: 1 << 20 })
stream.write('text')
stream.on('data', (chunk: string | Buffer) => void chunk)
