// Two Node processes, each with its own pion-ipc sidecar, connected through a tiny HTTP
// signalling server that this launcher runs on 127.0.0.1:
//   npm run example:two-processes
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startSignalingServer } from './signaling-server.mjs'

const TIMEOUT_MS = 40000
const peerScript = fileURLToPath(new URL('./peer.mjs', import.meta.url))

const server = await startSignalingServer()
console.log(`signalling server on ${server.url}`)

function run(role) {
  const child = spawn(process.execPath, [peerScript, role, server.url], { stdio: ['ignore', 'inherit', 'inherit'] })
  return new Promise((resolve) => {
    child.on('error', (err) => {
      console.error(`${role}: ${err.message}`)
      resolve(1)
    })
    child.on('exit', (code, signal) => resolve(code ?? `${signal}`))
    child.timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS)
  }).finally(() => clearTimeout(child.timer))
}

const [offer, answer] = await Promise.all([run('offer'), run('answer')])
await server.close()
console.log(`offer exited with ${offer}, answer exited with ${answer}`)
process.exitCode = offer === 0 && answer === 0 ? 0 : 1
