// The real sidecar killed while a channel is flooding, and frozen with SIGSTOP: everything
// fails cleanly, nothing hangs, nothing is left unhandled or running.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PionIpc } from '../index.mjs'
import { connectPair } from './helpers/webrtc.mjs'
import { readdirSync, readFileSync } from 'node:fs'
import { withTimeout, until, waitGone } from './helpers/util.mjs'

test('SIGKILL mid-flood: requests reject, connections fail, channels close; the watchdog brings it back', async () => {
  const ipc = new PionIpc({ logger: () => {}, autoRestart: true })
  const unhandled = []
  const onUnhandled = (reason) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  await ipc.start()
  try {
    const { a, b, dcA, dcB } = await connectPair(ipc)
    let received = 0
    dcB.on('message', () => received++)
    const events = []
    for (const [name, target] of [['a', a], ['b', b]]) {
      target.on('connectionstatechange', () => events.push(`${name}:${target.connectionState}`))
    }
    for (const [name, dc] of [['dcA', dcA], ['dcB', dcB]]) dc.on('close', () => events.push(`${name}:close`))
    // flood: keep the send queue full
    const chunk = Buffer.alloc(16 * 1024, 1)
    let sending = true
    const flood = () => {
      while (sending && dcA.readyState === 'open' && dcA.bufferedAmount < 1024 * 1024) dcA.send(chunk)
    }
    dcA.on('bufferedamountlow', flood)
    dcA.bufferedAmountLowThreshold = 256 * 1024
    flood()
    await until(() => received > 50, 10000, 'flood under way')
    const stats = a.getSctpStats().then(() => 'resolved', (e) => e.message)
    const pid = ipc.pid
    const exited = new Promise((resolve) => ipc.once('exit', (code, signal) => resolve(signal)))
    const restarted = new Promise((resolve) => ipc.once('restart', resolve))
    process.kill(pid, 'SIGKILL')
    assert.equal(await withTimeout(exited, 5000, 'exit'), 'SIGKILL')
    sending = false
    assert.ok(['resolved', 'process exited (code=null, signal=SIGKILL)'].includes(await stats))
    await until(() => events.length === 4, 2000, 'connections failed and channels closed')
    assert.deepEqual(events.slice().sort(), ['a:failed', 'b:failed', 'dcA:close', 'dcB:close'])
    assert.equal(a.iceConnectionState, 'failed')
    assert.equal(dcA.readyState, 'closed')
    assert.equal(dcA.bufferedAmount, 0)
    assert.throws(() => dcA.send('x'), (e) => e.message.startsWith('InvalidStateError'))
    assert.ok(await waitGone(pid, 2000))
    await withTimeout(restarted, 5000, 'restart')
    assert.ok(ipc.started)
    assert.notEqual(ipc.pid, pid)
    // the dead connections stay dead; close() still works on them
    await a.close()
    await b.close()
    assert.equal(a.connectionState, 'closed')
    // new connections use the new sidecar
    const again = await connectPair(ipc)
    const got = new Promise((resolve) => again.dcB.once('message', (e) => resolve(e.data)))
    again.dcA.send('after the restart')
    assert.equal(await withTimeout(got, 5000, 'message'), 'after the restart')
    await again.a.close()
    await again.b.close()
    assert.deepEqual(unhandled, [])
  } finally {
    process.off('unhandledRejection', onUnhandled)
    await ipc.stop()
  }
})

test('a send loop paced on bufferedAmount ends when the sidecar died under it', async () => {
  const ipc = new PionIpc({ logger: () => {} })
  await ipc.start()
  try {
    const { a, b, dcA } = await connectPair(ipc)
    const pid = ipc.pid
    process.kill(pid, 'SIGKILL')
    // The JS thread does not get to see the exit before the loop below: the channel is still
    // 'open' to it while every send fails to reach the dead sidecar.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500)
    const chunk = Buffer.alloc(16 * 1024, 1)
    let sends = 0
    while (dcA.readyState === 'open' && dcA.bufferedAmount < 1024 * 1024 && sends < 100_000) {
      dcA.send(chunk)
      sends++
    }
    assert.equal(dcA.readyState, 'open')
    assert.ok(sends <= 64, `the loop ended on bufferedAmount (${sends} sends)`)
    assert.ok(dcA.bufferedAmount >= 1024 * 1024)
    await until(() => dcA.readyState === 'closed', 5000, 'channel closed after the exit')
    assert.equal(dcA.bufferedAmount, 0)
    assert.ok(await waitGone(pid, 2000))
    await a.close()
    await b.close()
  } finally {
    await ipc.stop()
  }
})

test('SIGSTOP: requests time out, stop() still returns and leaves nothing behind', async () => {
  const ipc = new PionIpc({ logger: () => {}, timeout: 500 })
  await ipc.start()
  const pid = ipc.pid
  try {
    process.kill(pid, 'SIGSTOP')
    // wait until every thread of the sidecar is stopped before asking
    await until(() => {
      try {
        return readdirSync(`/proc/${pid}/task`).every((t) => {
          const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')
          return stat[stat.lastIndexOf(')') + 2] === 'T'
        })
      } catch {
        return false
      }
    }, 2000, 'sidecar stopped')
    await assert.rejects(withTimeout(ipc.request('ping'), 3000, 'timeout'), /^Error: request timeout: ping \(id=\d+\)$/)
    const t0 = Date.now()
    await withTimeout(ipc.stop(300), 5000, 'stop() of a frozen sidecar')
    assert.ok(Date.now() - t0 < 4000)
    assert.equal(ipc.started, false)
    assert.ok(await waitGone(pid, 2000), 'sidecar gone')
  } finally {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
    await ipc.stop()
  }
})
