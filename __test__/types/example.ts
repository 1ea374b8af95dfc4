// Type-checked by __test__/types.test.mjs with tsc --noEmit --strict: every public API used
// the way an application would.
import { PionIpc, RTCPeerConnection, RTCDataChannel, PeerConnection, DataChannel } from 'pion-node-rs'
import type { SctpStats, IpcResponse } from 'pion-node-rs'

async function main(): Promise<void> {
  const ipc = new PionIpc({
    logger: (line: string) => console.log(line),
    timeout: 5000,
    autoRestart: true,
    maxBackoffMs: 1000,
    restartResetWindowMs: 60000,
  })
  ipc.on('exit', (code: number | null, signal: string | null) => console.log(code, signal))
  ipc.on('error', (err: Error) => console.log(err.message))
  ipc.on('restart', () => console.log('restarted'))
  ipc.on('dc.message', (e) => console.log(e.pcId, e.dcLabel, e.isBinary, e.payload.length))
  await ipc.start()
  const started: boolean = ipc.started
  const res: IpcResponse = await ipc.request('ping', { pcId: null }, Buffer.from([]))
  console.log(started, res.header.id, res.payload.byteLength)

  const pc = new RTCPeerConnection({
    _ipc: ipc,
    iceServers: [{ urls: 'stun:127.0.0.1:3478' }, { urls: ['turn:127.0.0.1'], username: 'u', credential: 'c' }],
    settings: { sctpRtoMax: 10000, ipFilter: { denyCIDRs: ['172.16.0.0/12'] } },
    _pcId: 'typed',
  })
  const alias: PeerConnection = pc
  pc.on('icecandidate', (e) => console.log(e.candidate.candidate, e.candidate.sdpMid))
  pc.on('datachannel', (e) => e.channel.send('hi'))
  pc.ondatachannel = ({ channel }) => {
    channel.onmessage = (m) => console.log(typeof m.data === 'string' ? m.data : m.data.length)
  }
  pc.onconnectionstatechange = () => console.log(pc.connectionState, pc.iceConnectionState)
  pc.onselectedcandidatepairchange = () => {
    const pair = pc.selectedCandidatePair
    if (pair) console.log(`${pair.local.type} ${pair.remote.address}:${pair.remote.port}`)
  }
  const dc: RTCDataChannel = pc.createDataChannel('chat', { ordered: false })
  const aliasDc: DataChannel = dc
  dc.bufferedAmountLowThreshold = 65536
  dc.onopen = () => {
    dc.send('text')
    dc.send(Buffer.from([1]))
    dc.send(new Uint8Array(2))
    dc.send(new ArrayBuffer(3))
    dc.send(new DataView(new ArrayBuffer(4)))
    dc.send(new SharedArrayBuffer(5))
    dc.send(new BigInt64Array(new SharedArrayBuffer(8)))
  }
  dc.on('bufferedamountlow', () => console.log(dc.bufferedAmount))
  dc.on('error', (err) => console.log(err.message))
  dc.onclose = null
  const offer = await pc.createOffer()
  await pc.setLocalDescription(offer)
  await pc.addIceCandidate({ candidate: 'candidate:1 1 udp 1 10.99.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 })
  const again: { type: 'offer'; sdp: string } = await pc.restartIce()
  const stats: SctpStats | null = await pc.getSctpStats()
  console.log(alias === pc, aliasDc === dc, again.sdp.length, stats?.srttMs, pc.maxMessageSize)
  await dc.close()
  await pc.close()
  await ipc.stop(1000)
}

void main()

// A Duplex over an SDK channel.
import { DataChannelStream as SdkStream } from 'pion-node-rs'
declare const sdkChannel: import('pion-node-rs').RTCDataChannel
const sdkStream = new SdkStream(sdkChannel)
sdkStream.end(Buffer.from('bye'))
