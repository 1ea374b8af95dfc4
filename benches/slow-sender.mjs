// The sending side of bench (h), in a process of its own so that its pacing does not share
// the receiver's JavaScript thread. Driven by benches/bench.mjs over the fork() IPC channel:
//   parent -> { type: 'start', n, size, limit, low }   child -> { type: 'offer', sdp }
//   parent -> { type: 'answer', sdp }                   both  -> { type: 'candidate', candidate }
//   child  -> { type: 'sent', n, seconds }              child -> { type: 'error', message }
// Message i carries i as a u32 (big-endian) in its first 4 bytes.
import { PionIpc, RTCPeerConnection } from '../index.mjs'

const ipc = new PionIpc({ logger: () => {} })
let pc = null
let early = []

const fail = (e) => {
  process.send({ type: 'error', message: String(e?.message ?? e) })
  shutdown(1)
}

async function shutdown(code) {
  try {
    if (pc) await pc.close()
    await ipc.stop()
  } finally {
    process.exit(code)
  }
}

async function start({ n, size, limit, low }) {
  await ipc.start()
  pc = new RTCPeerConnection({ _ipc: ipc })
  pc.on('icecandidate', ({ candidate }) => process.send({ type: 'candidate', candidate: candidate && { ...candidate } }))
  const dc = pc.createDataChannel('slow')
  const opened = new Promise((resolve) => dc.once('open', resolve))
  const offer = await pc.createOffer()
  await pc.setLocalDescription(offer)
  process.send({ type: 'offer', sdp: { type: offer.type, sdp: offer.sdp } })
  await opened
  dc.bufferedAmountLowThreshold = low
  const t0 = process.hrtime.bigint()
  let i = 0
  while (i < n) {
    while (i < n && dc.bufferedAmount < limit) {
      const b = Buffer.allocUnsafe(size)
      b.writeUInt32BE(i++, 0)
      dc.send(b)
    }
    if (i < n) {
      await new Promise((resolve) => {
        const onLow = () => {
          clearTimeout(timer)
          resolve()
        }
        const timer = setTimeout(() => {
          dc.off('bufferedamountlow', onLow)
          resolve()
        }, 100) // bounds each wait
        dc.once('bufferedamountlow', onLow)
      })
    }
  }
  process.send({ type: 'sent', n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 })
}

process.on('message', (m) => {
  if (m.type === 'start') start(m).catch(fail)
  else if (m.type === 'answer') {
    pc.setRemoteDescription(m.sdp)
      .then(() => {
        for (const c of early) pc.addIceCandidate(c).catch(() => {})
        early = null
      })
      .catch(fail)
  } else if (m.type === 'candidate') {
    if (early) early.push(m.candidate)
    else pc.addIceCandidate(m.candidate).catch(() => {})
  } else if (m.type === 'stop') shutdown(0)
})
process.on('disconnect', () => shutdown(0))
