// Starts a pion-ipc sidecar, talks to it and stops it.
//   npm run demo
import { PionIpc } from '../index.mjs'

const ipc = new PionIpc({ logger: () => {} })

let t0 = process.hrtime.bigint()
await ipc.start()
const ms = (t) => (Number(process.hrtime.bigint() - t) / 1e6).toFixed(2)
console.log(`sidecar started (pid ${ipc.pid}) in ${ms(t0)} ms`)

t0 = process.hrtime.bigint()
await ipc.request('ping')
console.log(`ping answered in ${ms(t0)} ms`)

let candidates = 0
ipc.on('pc.icecandidate', () => candidates++)
await ipc.request('pc.create', {}, { pcId: 'demo', iceServers: [] })
await ipc.request('dc.create', { pcId: 'demo' }, { label: 'chat', ordered: true })
const offer = await ipc.request('pc.createOffer', { pcId: 'demo' })
console.log(`offer created: ${offer.payload.length} bytes of msgpack`)
await ipc.request('pc.close', { pcId: 'demo' })

await ipc.stop()
console.log(`sidecar stopped; ${candidates} ICE candidate events seen; exiting`)
