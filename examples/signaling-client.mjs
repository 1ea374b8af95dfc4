// The client side of signaling-server.mjs, and `connectPeer()`: one RTCPeerConnection with
// one open data channel, negotiated with a named peer through the server (trickle ICE).
import { setTimeout as sleep } from 'node:timers/promises'
import { RTCPeerConnection } from '../index.mjs'

/** A mailbox pair in a room: send() to `peer`, receive what is sent to `me`. */
export class Signaling {
  constructor(url, { room = 'default', me, peer }) {
    this.base = `${url}/rooms/${encodeURIComponent(room)}`
    this.me = me
    this.peer = peer
    this.inbox = []
    this.waiters = []
    this.handlers = new Map()
    this.abort = new AbortController()
    this.polling = this.#poll()
  }

  async send(message) {
    const res = await fetch(`${this.base}/${this.peer}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(10000),
    })
    if (!res.ok) throw new Error(`signalling POST failed: HTTP ${res.status}`)
  }

  /** Calls `handler` for every message of this type, those already received first. */
  subscribe(type, handler) {
    this.handlers.set(type, handler)
    const queued = this.inbox.filter((m) => m.type === type)
    this.inbox = this.inbox.filter((m) => m.type !== type)
    for (const m of queued) handler(m)
  }

  /** The next message of this type, within `ms`. */
  take(type, ms = 20000) {
    const i = this.inbox.findIndex((m) => m.type === type)
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0])
    return new Promise((resolve, reject) => {
      const waiter = { type, resolve }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        reject(new Error(`timed out after ${ms} ms waiting for a "${type}" message from ${this.peer}`))
      }, ms)
      waiter.resolve = (m) => {
        clearTimeout(timer)
        resolve(m)
      }
      this.waiters.push(waiter)
    })
  }

  close() {
    this.abort.abort()
    return this.polling
  }

  #deliver(message) {
    const handler = this.handlers.get(message.type)
    if (handler) return handler(message)
    const i = this.waiters.findIndex((w) => w.type === message.type)
    if (i >= 0) return this.waiters.splice(i, 1)[0].resolve(message)
    this.inbox.push(message)
  }

  async #poll() {
    const { signal } = this.abort
    while (!signal.aborted) {
      try {
        const res = await fetch(`${this.base}/${this.me}?wait=20000`, { signal })
        if (!res.ok) throw new Error(`HTTP ${res.status}`)
        for (const message of await res.json()) this.#deliver(message)
      } catch (err) {
        if (signal.aborted) return
        console.error(`[${this.me}] signalling poll failed (${err.message}); retrying`)
        await sleep(200)
      }
    }
  }
}

/**
 * Connects through `signaling` as 'offer' (creates the channel `label`) or 'answer' (waits
 * for it). Resolves { pc, dc } once the channel is open, or rejects after `ms`.
 * `onMessage` is attached as soon as the channel exists, before it opens, so that no
 * message can arrive before there is a listener for it.
 */
export async function connectPeer({ ipc, signaling, role, label = 'data', ms = 20000, onMessage }) {
  const pc = new RTCPeerConnection({ _ipc: ipc })
  let early = [] // remote candidates received before the remote description was set
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) signaling.send({ type: 'candidate', candidate }).catch(() => {})
  }
  // A candidate that comes after the connection closed has nothing left to join.
  const add = (c) => {
    if (pc.connectionState === 'closed') return
    pc.addIceCandidate(c).catch((err) => pc.connectionState !== 'closed' && console.error(`addIceCandidate: ${err.message}`))
  }
  signaling.subscribe('candidate', ({ candidate }) => {
    if (early) early.push(candidate)
    else add(candidate)
  })
  const remoteSet = () => {
    for (const c of early) add(c)
    early = null
  }

  let timer
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no open channel after ${ms} ms (${role})`)), ms)
  })
  const work = (async () => {
    let dc
    if (role === 'offer') {
      dc = pc.createDataChannel(label)
      if (onMessage) dc.on('message', onMessage)
      const offer = await pc.createOffer()
      await pc.setLocalDescription(offer)
      await signaling.send({ type: 'description', description: offer })
      const { description } = await signaling.take('description', ms)
      await pc.setRemoteDescription(description)
      remoteSet()
    } else {
      const channel = new Promise((resolve) => {
        pc.ondatachannel = ({ channel }) => {
          if (onMessage) channel.on('message', onMessage)
          resolve(channel)
        }
      })
      const { description } = await signaling.take('description', ms)
      await pc.setRemoteDescription(description)
      remoteSet()
      const answer = await pc.createAnswer()
      await pc.setLocalDescription(answer)
      await signaling.send({ type: 'description', description: answer })
      dc = await channel
    }
    if (dc.readyState !== 'open') await new Promise((resolve) => dc.once('open', resolve))
    return { pc, dc }
  })()
  try {
    return await Promise.race([work, deadline])
  } catch (err) {
    await pc.close().catch(() => {})
    throw err
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Tells the peer we are done and waits (up to `ms`) until it says so too: after that neither
 * side still expects anything over the channel, so both may close.
 */
export async function finish(signaling, ms = 10000) {
  await signaling.send({ type: 'done' })
  await signaling.take('done', ms)
}
