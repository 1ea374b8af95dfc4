// How the addon lives and dies with its host: Node exits by itself after stop(), sidecars
// never outlive what started them (worker threads, killed parents).
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import { withTimeout, waitGone, alive, until } from './helpers/util.mjs'

const indexUrl = new URL('../index.mjs', import.meta.url).href

/** Runs `code` (ESM) in a child Node; resolves with { code, signal, stdout, ms }. */
function runChild(code, ms = 15000) {
  const started = Date.now()
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const done = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }))
  )
  return withTimeout(done, ms, 'child process to exit by itself').catch((err) => {
    child.kill('SIGKILL')
    throw err
  })
}

describe('Node exits by itself', () => {
  test('after start/request/stop, five times in a row, leaving no sidecar', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await runChild(`
        import { PionIpc } from '${indexUrl}'
        const ipc = new PionIpc({ logger: () => {} })
        await ipc.start()
        await ipc.request('ping')
        console.log(ipc.pid)
        await ipc.stop()
      `)
      assert.equal(r.code, 0, r.stderr)
      const pid = Number(r.stdout.trim())
      assert.ok(pid > 0)
      assert.ok(await waitGone(pid, 1000), `sidecar ${pid} gone`)
    }
  })

  test('after the sidecar crashed (no autoRestart)', async () => {
    const r = await runChild(`
      import { PionIpc } from '${indexUrl}'
      const ipc = new PionIpc({ logger: () => {} })
      await ipc.start()
      ipc.on('exit', (code, signal) => console.log('exit', code, signal))
      process.kill(ipc.pid, 'SIGKILL')
    `)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /exit null SIGKILL/)
  })

  test('after a failed start', async () => {
    const r = await runChild(`
      import { PionIpc } from '${indexUrl}'
      const ipc = new PionIpc({ logger: () => {}, binPath: '/nonexistent/pion-ipc' })
      await ipc.start().catch((e) => console.log('rejected', e.message))
    `)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /rejected spawn \/nonexistent\/pion-ipc ENOENT/)
  })

  test('a running sidecar keeps the process alive', async () => {
    const r = await runChild(`
      import { PionIpc } from '${indexUrl}'
      const ipc = new PionIpc({ logger: () => {} })
      await ipc.start()
      let alive = true
      setTimeout(() => { console.log('still alive'); ipc.stop() }, 300)
    `)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /still alive/)
  })
})

describe('sidecars never outlive their host', () => {
  test('a parent killed with SIGKILL takes its sidecar with it', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { PionIpc } from '${indexUrl}'
      const ipc = new PionIpc({ logger: () => {} })
      await ipc.start()
      console.log(ipc.pid)
    `], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      const pid = await until(() => Number(out.trim()) || 0, 10000, 'sidecar pid')
      assert.ok(alive(pid))
      child.kill('SIGKILL')
      assert.ok(await waitGone(pid, 1000), 'sidecar gone within 1 s of the parent being killed')
    } finally {
      child.kill('SIGKILL')
    }
  })

  for (const how of ['terminate', 'exit']) {
    test(`a worker thread's sidecar is killed when the worker ends (${how})`, async () => {
      const worker = new Worker(`
        const { parentPort } = require('node:worker_threads')
        const { PionIpc } = require(${JSON.stringify(fileURLToPath(new URL('../index.js', import.meta.url)))})
        const ipc = new PionIpc({ logger: () => {} })
        ipc.start().then(() => {
          parentPort.postMessage(ipc.pid)
          parentPort.on('message', () => process.exit(0))
          // keep requests in flight while the worker goes away
          const spin = () => ipc.request('ping').then(spin, () => {})
          for (let i = 0; i < 8; i++) spin()
        })
      `, { eval: true })
      try {
        const pid = await withTimeout(new Promise((resolve) => worker.once('message', resolve)), 10000, 'worker start')
        assert.ok(alive(pid))
        if (how === 'terminate') await worker.terminate()
        else {
          const exited = new Promise((resolve) => worker.once('exit', resolve))
          worker.postMessage('exit')
          await withTimeout(exited, 5000, 'worker exit')
        }
        assert.ok(await waitGone(pid, 2000), 'sidecar gone within 2 s')
      } finally {
        await worker.terminate()
      }
    })
  }

  test('the host keeps working after its workers went away', async () => {
    const { PionIpc } = await import('../index.mjs')
    const ipc = new PionIpc({ logger: () => {} })
    await ipc.start()
    await ipc.request('ping')
    await ipc.stop()
  })
})
