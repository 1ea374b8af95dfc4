// Measures PionIpc start() time and ping round trips (one at a time, and pipelined).
//   node benches/ping.mjs
import { PionIpc } from '../index.mjs'

const now = () => process.hrtime.bigint()
const us = (t) => Number(now() - t) / 1e3
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

const starts = []
for (let i = 0; i < 10; i++) {
  const ipc = new PionIpc({ logger: () => {} })
  const t = now()
  await ipc.start()
  starts.push(us(t) / 1000)
  await ipc.stop()
}
starts.sort((a, b) => a - b)

const ipc = new PionIpc({ logger: () => {} })
await ipc.start()
for (let i = 0; i < 2000; i++) await ipc.request('ping') // warm-up
const rtts = []
for (let i = 0; i < 20000; i++) {
  const t = now()
  await ipc.request('ping')
  rtts.push(us(t))
}
rtts.sort((a, b) => a - b)

const results = {}
for (const inflight of [64, 1024]) {
  const total = 200000
  let sent = 0
  let done = 0
  const t = now()
  await new Promise((resolve, reject) => {
    const next = () => {
      if (sent >= total) return
      sent++
      ipc.request('ping').then(() => {
        if (++done === total) resolve()
        else next()
      }, reject)
    }
    for (let i = 0; i < inflight; i++) next()
  })
  results[inflight] = Math.round(total / (us(t) / 1e6))
}
await ipc.stop()

console.log(`start(): median ${pct(starts, 50).toFixed(1)} ms, best ${starts[0].toFixed(1)} ms (10 runs)`)
console.log(`ping one at a time: median ${pct(rtts, 50).toFixed(1)} µs, p99 ${pct(rtts, 99).toFixed(1)} µs (20000)`)
for (const [inflight, rate] of Object.entries(results)) {
  console.log(`ping pipelined, ${inflight} in flight: ${rate} per s`)
}
