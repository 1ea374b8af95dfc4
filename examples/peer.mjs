// One side of the two-process example: `node examples/peer.mjs offer|answer <signalling URL> [room]`.
// Connects to the other side through the signalling server, opens (or accepts) the channel
// "greetings", sends a greeting, prints the one it gets, and exits 0.
import { PionIpc } from '../index.mjs'
import { Signaling, connectPeer, finish } from './signaling-client.mjs'

const [role, url, room = 'greetings'] = process.argv.slice(2)
if (!['offer', 'answer'].includes(role) || !url) {
  console.error('usage: node examples/peer.mjs offer|answer <signalling URL> [room]')
  process.exit(64)
}
const peer = role === 'offer' ? 'answer' : 'offer'
const watchdog = setTimeout(() => {
  console.error(`[${role}] gave up after 30 s`)
  process.exit(1)
}, 30000)

const ipc = new PionIpc({ logger: () => {} })
const signaling = new Signaling(url, { room, me: role, peer })
try {
  await ipc.start()
  let gotGreeting
  const greeting = new Promise((resolve) => (gotGreeting = resolve))
  const onMessage = ({ data }) => gotGreeting(data)
  const { pc, dc } = await connectPeer({ ipc, signaling, role, label: 'greetings', onMessage })
  // the sidecar may report the selected pair just after the channel opened
  const pair =
    pc.selectedCandidatePair ??
    (await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 5000)
      pc.once('selectedcandidatepairchange', () => {
        clearTimeout(timer)
        resolve(pc.selectedCandidatePair)
      })
    }))
  console.log(`[${role}] connected: channel "${dc.label}" open (${pair?.local.address}:${pair?.local.port} -> ${pair?.remote.address}:${pair?.remote.port})`)

  dc.send(`hello from the ${role}er (pid ${process.pid})`)
  console.log(`[${role}] received: ${await greeting}`)

  await finish(signaling)
  await pc.close()
  console.log(`[${role}] done`)
} catch (err) {
  console.error(`[${role}] failed: ${err.stack ?? err}`)
  process.exitCode = 1
} finally {
  await signaling.close()
  await ipc.stop()
  clearTimeout(watchdog)
}
