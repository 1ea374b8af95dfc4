// The answering process of benches/connect.mjs's "two processes" case:
// `node connect-answerer.mjs <signalling URL> <n>` answers rooms c0 … c<n-1> in turn with its
// own sidecar; on each channel it says "open" once open, then closes when the offerer does.
import { PionIpc } from '../index.mjs'
import { Signaling, connectPeer } from '../examples/signaling-client.mjs'

const [url, count] = process.argv.slice(2)
const ipc = new PionIpc({ logger: () => {} })
await ipc.start()
process.send({ type: 'ready' })
process.on('SIGTERM', () => ipc.stop().then(() => process.exit(0)))
for (let i = 0; i < Number(count); i++) {
  const signaling = new Signaling(url, { room: `c${i}`, me: 'answer', peer: 'offer' })
  const { pc, dc } = await connectPeer({ ipc, signaling, role: 'answer', label: `c${i}`, ms: 20000 })
  const closed = new Promise((resolve) => dc.once('close', resolve))
  dc.send('open')
  await closed
  await pc.close()
  await signaling.close()
}
await ipc.stop()
process.disconnect?.()
