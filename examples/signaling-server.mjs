// A tiny HTTP signalling server: one mailbox per (room, peer name), read by long polling.
//
//   POST /rooms/<room>/<to>          body: one JSON message, queued for peer <to>
//   GET  /rooms/<room>/<me>?wait=ms  every message queued for <me> (a JSON array); waits up
//                                    to `wait` ms (at most 25000) while there is none
//
// It listens on 127.0.0.1 only. Run on its own it prints its URL and serves until Ctrl-C:
//   node examples/signaling-server.mjs [port]
// or use it from code: `const { url, close } = await startSignalingServer()`.
import http from 'node:http'
import { pathToFileURL } from 'node:url'

const MAX_BODY = 1 << 20
const MAX_WAIT_MS = 25000

/** Starts the server on 127.0.0.1 (port 0: a random free one); resolves { url, port, close }. */
export async function startSignalingServer({ port = 0, log = () => {} } = {}) {
  const boxes = new Map() // "room/name" → { messages: [], waiters: Set<() => void> }
  const box = (key) => {
    let b = boxes.get(key)
    if (!b) boxes.set(key, (b = { messages: [], waiters: new Set() }))
    return b
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    const m = /^\/rooms\/([\w.-]{1,64})\/([\w.-]{1,64})$/.exec(url.pathname)
    if (!m) return reply(res, 404, { error: 'not found' })
    const key = `${m[1]}/${m[2]}`

    if (req.method === 'POST') {
      let size = 0
      const parts = []
      req.on('data', (chunk) => {
        size += chunk.length
        if (size > MAX_BODY) req.destroy()
        else parts.push(chunk)
      })
      req.on('end', () => {
        let message
        try {
          message = JSON.parse(Buffer.concat(parts).toString('utf8'))
        } catch {
          return reply(res, 400, { error: 'body is not JSON' })
        }
        const b = box(key)
        b.messages.push(message)
        for (const wake of b.waiters) wake()
        log(`${key} <- ${message?.type ?? typeof message}`)
        reply(res, 204)
      })
      return
    }

    if (req.method === 'GET') {
      const b = box(key)
      const wait = Math.min(Math.max(Number(url.searchParams.get('wait')) || 0, 0), MAX_WAIT_MS)
      let timer
      const flush = () => {
        clearTimeout(timer)
        b.waiters.delete(flush)
        if (res.writableEnded || res.destroyed) return
        const messages = b.messages.splice(0)
        reply(res, 200, messages)
      }
      if (b.messages.length > 0 || wait === 0) return flush()
      timer = setTimeout(flush, wait)
      b.waiters.add(flush)
      res.on('close', () => {
        clearTimeout(timer)
        b.waiters.delete(flush)
      })
      return
    }

    reply(res, 405, { error: 'method not allowed' })
  })

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  const actual = server.address().port
  return {
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function reply(res, status, body) {
  if (body === undefined) return res.writeHead(status).end()
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url, close } = await startSignalingServer({
    port: Number(process.argv[2] ?? 0),
    log: (line) => console.log(line),
  })
  console.log(`signalling server listening on ${url}`)
  const stop = () => close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
