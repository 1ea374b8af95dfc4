// Code written for a browser's RTCPeerConnection (lib.dom's types, no import of ours), then
// run with the polyfill's classes: it must type-check unchanged.
import wrtc, { RTCPeerConnection as PolyfillPeerConnection, installGlobals } from 'pion-node-rs/polyfill'

// --- browser code: only lib.dom names below this line, up to the marker ---
type Signal = { description?: RTCSessionDescriptionInit; candidate?: RTCIceCandidateInit | null }

function wire(pc: RTCPeerConnection, send: (s: Signal) => void): (s: Signal) => Promise<void> {
  pc.onicecandidate = (ev: RTCPeerConnectionIceEvent) => send({ candidate: ev.candidate ? ev.candidate.toJSON() : null })
  pc.addEventListener('connectionstatechange', () => console.log(pc.connectionState))
  pc.onnegotiationneeded = async () => {
    await pc.setLocalDescription()
    send({ description: pc.localDescription?.toJSON() })
  }
  return async ({ description, candidate }) => {
    if (description) {
      await pc.setRemoteDescription(description)
      if (description.type === 'offer') {
        const answer: RTCSessionDescriptionInit = await pc.createAnswer()
        answer.sdp = answer.sdp?.replace(/\r\n$/, '\r\n')
        await pc.setLocalDescription(answer)
        send({ description: pc.localDescription!.toJSON() })
      }
    } else if (candidate !== undefined) {
      await pc.addIceCandidate(candidate)
    }
  }
}

function chat(channel: RTCDataChannel, onText: (text: string) => void): void {
  channel.binaryType = 'arraybuffer'
  channel.bufferedAmountLowThreshold = 64 * 1024
  channel.onopen = () => channel.send('hello')
  channel.onmessage = (ev: MessageEvent<string | ArrayBuffer>) => {
    if (typeof ev.data === 'string') onText(ev.data)
    else channel.send(new Uint8Array(ev.data))
  }
  channel.addEventListener('bufferedamountlow', () => channel.send(new Blob(['more'])))
  channel.onerror = (ev: RTCErrorEvent) => console.error(ev.error.errorDetail)
  channel.onclose = () => console.log(channel.readyState)
}

async function report(pc: RTCPeerConnection): Promise<number> {
  const stats: RTCStatsReport = await pc.getStats()
  let bytes = 0
  stats.forEach((s) => {
    if (s.type === 'data-channel') bytes += s.bytesReceived
  })
  return bytes
}

function start(Impl: typeof RTCPeerConnection, config: RTCConfiguration): [RTCPeerConnection, RTCPeerConnection] {
  const a = new Impl(config)
  const b = new Impl(config)
  const toB = wire(b, (s) => void toA(s))
  const toA = wire(a, (s) => void toB(s))
  b.ondatachannel = (ev: RTCDataChannelEvent) => chat(ev.channel, (t) => console.log('b', t))
  chat(a.createDataChannel('chat', { ordered: true }), (t) => console.log('a', t))
  return [a, b]
}
// --- end of browser code ---

// The polyfill's classes are lib.dom's: assignable where browser code expects them.
const Impl: typeof globalThis.RTCPeerConnection = PolyfillPeerConnection
const [a, b] = start(Impl, { iceServers: [{ urls: 'stun:stun.example.org' }] })
const c: RTCSessionDescription = new wrtc.RTCSessionDescription({ type: 'offer', sdp: '' })
const candidate: RTCIceCandidate = new wrtc.RTCIceCandidate({ candidate: '', sdpMid: '0' })
void c
void candidate
void report(a).then(() => {
  a.close()
  b.close()
})
// With this library's additions, and on globalThis for code that looks there.
new PolyfillPeerConnection({ settings: { iceFailedTimeout: 5000 }, candidateHold: { timeoutMs: 100 } }).close()
installGlobals()
