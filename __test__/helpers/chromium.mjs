// Debian's headless Chromium, started on a page of ours and ended with every helper process
// it made (for the browser test and the connect benchmark).
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sleep } from './util.mjs'

export const CHROMIUM = '/usr/bin/chromium'

/** The pids of the live (not zombie) processes in process group `pgid`, from /proc. */
function groupMembers(pgid) {
  const pids = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // after the parenthesised name: state ppid pgrp ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(pgrp) === pgid && state !== 'Z') pids.push(Number(entry))
    } catch {}
  }
  return pids
}

/** Waits (up to `ms`) until process group `pgid` is empty; returns whether it is. */
async function groupGone(pgid, ms) {
  const end = Date.now() + ms
  while (groupMembers(pgid).length > 0) {
    if (Date.now() > end) return false
    await sleep(50)
  }
  return true
}

/**
 * Starts Chromium on `url`, with host candidates as real addresses (no mDNS names).
 * Returns { exited, spawnError, stderr(), stop() }: `exited` resolves { code, signal },
 * `spawnError` rejects if it could not start, stop() ends its whole process group.
 */
export async function launchChromium(url) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: this needs Debian's Chromium (apt-get update && apt-get install -y chromium)`)
  }
  const profile = await mkdtemp(join(tmpdir(), 'pion-chromium-'))
  const chromium = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-breakpad',
      '--disable-crash-reporter',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      `--user-data-dir=${profile}`,
      '--remote-debugging-port=0',
      url,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  )
  let stderr = ''
  chromium.stderr.setEncoding('utf8').on('data', (s) => (stderr = (stderr + s).slice(-8000)))
  return {
    exited: new Promise((resolve) => chromium.once('exit', (code, signal) => resolve({ code, signal }))),
    spawnError: new Promise((_, reject) => chromium.once('error', reject)),
    stderr: () => stderr,
    async stop() {
      // Chromium's helpers (zygotes, renderers, GPU, network) share its process group, which
      // detached: true made it the leader of; signal the group by Chromium's pid.
      for (const sig of ['SIGTERM', 'SIGKILL']) {
        try {
          process.kill(-chromium.pid, sig)
        } catch {}
        if (await groupGone(chromium.pid, 3000)) break
      }
      await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })
    },
  }
}

/**
 * An HTTP server on 127.0.0.1 for a page: GET / is `page`; GET /signal?wait=ms long-polls what
 * `sendToBrowser(msg)` queued; a POST to /<name> with a JSON body is emitted on the server as
 * the event <name>. Resolves the server, with `url` and `sendToBrowser`.
 */
export async function startPageServer(page) {
  const toBrowser = []
  let wake = null
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page)
    } else if (req.method === 'GET' && url.pathname === '/signal') {
      const flush = () => {
        clearTimeout(timer)
        wake = null
        if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(toBrowser.splice(0)))
      }
      const timer = setTimeout(flush, Math.min(Number(url.searchParams.get('wait')) || 0, 20000))
      res.on('close', () => clearTimeout(timer))
      if (toBrowser.length) flush()
      else wake = flush
    } else if (req.method === 'POST') {
      const parts = []
      req.on('data', (c) => parts.push(c))
      req.on('end', () => {
        res.writeHead(204).end()
        let body
        try {
          body = JSON.parse(Buffer.concat(parts).toString('utf8'))
        } catch {
          body = { error: 'unparseable POST body' }
        }
        server.emit(url.pathname.slice(1), body)
      })
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  server.sendToBrowser = (msg) => {
    toBrowser.push(msg)
    wake?.()
  }
  server.url = `http://127.0.0.1:${server.address().port}/`
  return server
}
