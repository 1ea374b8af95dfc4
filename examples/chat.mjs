// A loopback chat: "alice" and "bob" are two RTCPeerConnections in this one process (one
// pion-ipc sidecar). Every line typed on stdin goes from alice to bob, and bob echoes it back
// uppercased.
//   npm run example:chat            type lines; Ctrl-D (or Ctrl-C) ends
//   node examples/chat.mjs --demo   sends three canned lines and exits (no stdin)
import readline from 'node:readline'
import { PionIpc, RTCPeerConnection } from '../index.mjs'

const demo = process.argv.includes('--demo')
const DEMO_LINES = ['hello bob', 'how are you?', 'bye for now']

const ipc = new PionIpc({ logger: () => {} })
await ipc.start()
const alice = new RTCPeerConnection({ _ipc: ipc })
const bob = new RTCPeerConnection({ _ipc: ipc })

// Trickle ICE between the two, holding back candidates until the receiver has its remote
// description.
function trickle(from, to) {
  let early = []
  from.onicecandidate = ({ candidate }) => {
    if (early) early.push(candidate)
    else to.addIceCandidate(candidate).catch(() => {})
  }
  return () => {
    for (const candidate of early) to.addIceCandidate(candidate).catch(() => {})
    early = null
  }
}
const toBob = trickle(alice, bob)
const toAlice = trickle(bob, alice)

const chat = alice.createDataChannel('chat')
const bobChannel = new Promise((resolve) => (bob.ondatachannel = ({ channel }) => resolve(channel)))
const opened = new Promise((resolve) => chat.once('open', resolve))
const offer = await alice.createOffer()
await alice.setLocalDescription(offer)
await bob.setRemoteDescription(offer)
toBob()
const answer = await bob.createAnswer()
await bob.setLocalDescription(answer)
await alice.setRemoteDescription(answer)
toAlice()

const timeout = setTimeout(() => {
  console.error('chat: the channel did not open within 20 s')
  process.exit(1)
}, 20000)
await opened
const bobDc = await bobChannel
clearTimeout(timeout)
console.log('chat: connected; alice -> bob, bob echoes in upper case')

bobDc.onmessage = ({ data }) => {
  console.log(`bob got: ${data}`)
  bobDc.send(String(data).toUpperCase())
}
let echoes = 0
let onEcho = () => {}
chat.onmessage = ({ data }) => {
  console.log(`alice got: ${data}`)
  echoes++
  onEcho()
}
const echoed = (n) => new Promise((resolve) => (onEcho = () => echoes >= n && resolve()))

let sent = 0
function say(line) {
  console.log(`alice says: ${line}`)
  chat.send(line)
  sent++
}

async function shutdown(code = 0) {
  await alice.close()
  await bob.close()
  await ipc.stop()
  console.log('chat: bye')
  process.exitCode = code
}

if (demo) {
  const guard = setTimeout(() => {
    console.error('chat: no echo within 10 s')
    process.exit(1)
  }, 10000)
  for (const line of DEMO_LINES) say(line)
  await echoed(DEMO_LINES.length)
  clearTimeout(guard)
  await shutdown()
} else {
  const rl = readline.createInterface({ input: process.stdin, terminal: false })
  rl.on('line', (line) => line.trim() && say(line))
  rl.on('close', async () => {
    // wait (briefly) for the echoes of what was just typed
    const guard = setTimeout(() => {
      echoes = sent
      onEcho()
    }, 2000)
    await echoed(sent)
    clearTimeout(guard)
    await shutdown()
  })
  process.once('SIGINT', () => rl.close())
}
