// How applications signal, against the offerer's candidate hold (issue 15): each shape must
// connect with the hold on (the default), and the hold must do what it says. Connect times
// are measured by `npm run bench` (benches/connect.mjs), not here.
// Run: scripts/netns-run.sh node --test --test-concurrency=1 __test__/connect.test.mjs
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { PionIpc, RTCPeerConnection } from '../index.mjs'
import { withTimeout, until } from './helpers/util.mjs'
import { trickle } from './helpers/webrtc.mjs'

const MS = 15000
let ipc

before(async () => {
  ipc = new PionIpc({ logger: () => {} })
  await withTimeout(ipc.start(), 10000, 'start()')
})

after(async () => {
  await withTimeout(ipc.stop(), 10000, 'stop()')
})

/** Two connections on the shared sidecar; `optionsA`/`optionsB` more options of each. */
function pair(optionsA = {}, optionsB = {}) {
  const a = new RTCPeerConnection({ _ipc: ipc, ...optionsA })
  const b = new RTCPeerConnection({ _ipc: ipc, ...optionsB })
  return { a, b }
}

/** Everything `pc` emits about candidates and gathering, in order. */
function record(pc) {
  const log = []
  pc.on('icecandidate', ({ candidate }) => log.push({ candidate: candidate.candidate }))
  pc.on('icegatheringstatechange', () => log.push({ gathering: pc.iceGatheringState }))
  return log
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve()
  return withTimeout(
    new Promise((resolve) => {
      const check = () => {
        if (pc.iceGatheringState === 'complete') {
          pc.off('icegatheringstatechange', check)
          resolve()
        }
      }
      pc.on('icegatheringstatechange', check)
    }),
    MS,
    'gathering complete',
  )
}

/** Opens a channel from A and checks that it opens on both sides and carries a message each
 * way. */
async function openAndTalk(a, b, start) {
  const dcA = a.createDataChannel('shape')
  const remote = new Promise((resolve) => b.once('datachannel', ({ channel }) => resolve(channel)))
  const openA = new Promise((resolve) => dcA.once('open', resolve))
  await start()
  const dcB = await withTimeout(remote, MS, 'datachannel on B')
  await withTimeout(openA, MS, 'open on A')
  if (dcB.readyState !== 'open') await withTimeout(new Promise((r) => dcB.once('open', r)), MS, 'open on B')
  const atB = new Promise((resolve) => dcB.once('message', ({ data }) => resolve(String(data))))
  const atA = new Promise((resolve) => dcA.once('message', ({ data }) => resolve(String(data))))
  dcA.send('from A')
  dcB.send('from B')
  assert.equal(await withTimeout(atB, MS, 'message at B'), 'from A')
  assert.equal(await withTimeout(atA, MS, 'message at A'), 'from B')
}

async function closeBoth(a, b) {
  await Promise.all([a, b].map((pc) => withTimeout(pc.close(), 10000, 'close()').catch(() => {})))
}

const candidateLines = (sdp) => sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'))

describe('signalling shapes with the candidate hold on', () => {
  test('trickle at once: every candidate is forwarded the moment it is emitted', async () => {
    const { a, b } = pair()
    // No queueing at all: a candidate that reaches its remote too early is refused there
    // (PROTOCOL.md, trap 17) and lost, as in such an application.
    a.on('icecandidate', ({ candidate }) => b.addIceCandidate(candidate).catch(() => {}))
    b.on('icecandidate', ({ candidate }) => a.addIceCandidate(candidate).catch(() => {}))
    try {
      await openAndTalk(a, b, async () => {
        const offer = await a.createOffer()
        await a.setLocalDescription(offer)
        await b.setRemoteDescription(offer)
        const answer = await b.createAnswer()
        await b.setLocalDescription(answer)
        await a.setRemoteDescription(answer)
      })
      assert.equal(a.connectionState, 'connected')
    } finally {
      await closeBoth(a, b)
    }
  })

  test('trickle with queueing: the offerer emits no candidate before the answer is applied', async () => {
    const { a, b } = pair()
    const logA = record(a)
    let answerApplied = false
    const earlyA = []
    a.on('icecandidate', ({ candidate }) => {
      if (!answerApplied) earlyA.push(candidate.candidate)
    })
    const toB = trickle(a, b)
    const toA = trickle(b, a)
    try {
      await openAndTalk(a, b, async () => {
        const offer = await a.createOffer()
        await a.setLocalDescription(offer)
        await b.setRemoteDescription(offer)
        toB()
        const answer = await b.createAnswer()
        await b.setLocalDescription(answer)
        await a.setRemoteDescription(answer)
        answerApplied = true
        toA()
      })
      assert.deepEqual(earlyA, [], 'candidates emitted while the answer was awaited')
      assert.ok(logA.some((e) => e.candidate), 'A emitted its candidates once released')
    } finally {
      await closeBoth(a, b)
    }
  })

  test('non-trickle both ways: each side sends its localDescription once gathering is complete', async () => {
    const { a, b } = pair()
    try {
      await openAndTalk(a, b, async () => {
        await a.setLocalDescription(await a.createOffer())
        await gathered(a)
        const offer = a.localDescription
        assert.equal(offer.type, 'offer')
        assert.ok(candidateLines(offer.sdp).length > 0, 'the offer carries the gathered candidates')
        assert.match(offer.sdp, /a=end-of-candidates/)
        await b.setRemoteDescription(offer)
        await b.setLocalDescription(await b.createAnswer())
        await gathered(b)
        const answer = b.localDescription
        assert.equal(answer.type, 'answer')
        assert.ok(candidateLines(answer.sdp).length > 0, 'the answer carries the gathered candidates')
        await a.setRemoteDescription(answer)
      })
    } finally {
      await closeBoth(a, b)
    }
  })

  test('non-trickle answer only: the offerer trickles, the answer comes whole', async () => {
    const { a, b } = pair()
    const toB = trickle(a, b)
    try {
      await openAndTalk(a, b, async () => {
        const offer = await a.createOffer()
        await a.setLocalDescription(offer)
        await b.setRemoteDescription(offer)
        toB()
        await b.setLocalDescription(await b.createAnswer())
        await gathered(b)
        await a.setRemoteDescription(b.localDescription)
      })
    } finally {
      await closeBoth(a, b)
    }
  })

  for (const [role, optionsA, optionsB] of [
    ['offers', { candidateHold: false }, {}],
    ['answers', {}, { candidateHold: false }],
  ]) {
    test(`a remote that behaves as the old SDK (trickles, never holds) ${role}`, async () => {
      const { a, b } = pair(optionsA, optionsB)
      const toB = []
      const toA = []
      a.on('icecandidate', ({ candidate }) => toB.push(candidate))
      b.on('icecandidate', ({ candidate }) => toA.push(candidate))
      let aHasRemote = false
      let bHasRemote = false
      const pump = setInterval(() => {
        if (bHasRemote) for (const c of toB.splice(0)) b.addIceCandidate(c).catch(() => {})
        if (aHasRemote) for (const c of toA.splice(0)) a.addIceCandidate(c).catch(() => {})
      }, 5)
      try {
        await openAndTalk(a, b, async () => {
          const offer = await a.createOffer()
          await a.setLocalDescription(offer)
          await b.setRemoteDescription(offer)
          bHasRemote = true
          const answer = await b.createAnswer()
          await b.setLocalDescription(answer)
          await a.setRemoteDescription(answer)
          aHasRemote = true
        })
      } finally {
        clearInterval(pump)
        await closeBoth(a, b)
      }
    })
  }
})

describe('the candidateHold option', () => {
  test('false: the offerer emits its candidates while the answer is still awaited', async () => {
    const { a, b } = pair({ candidateHold: false })
    a.createDataChannel('unheld')
    try {
      const first = new Promise((resolve) => a.once('icecandidate', resolve))
      await a.setLocalDescription(await a.createOffer())
      // Nothing is answered: with the hold off the candidates come anyway.
      await withTimeout(first, MS, 'a candidate before any answer')
    } finally {
      await closeBoth(a, b)
    }
  })

  test('{ timeoutMs }: with an answer that has no candidates and no remote candidate, the hold ends after the timeout', async () => {
    const { a, b } = pair({ candidateHold: { timeoutMs: 300 } })
    const emitted = []
    a.on('icecandidate', () => emitted.push(Date.now()))
    // an offer without a channel has no media section, so no candidates
    a.createDataChannel('held')
    try {
      await a.setLocalDescription(await a.createOffer())
      await b.setRemoteDescription(a.localDescription)
      const answer = await b.createAnswer()
      // the bare answer, before B gathered anything
      assert.equal(candidateLines(answer.sdp).length, 0)
      await b.setLocalDescription(answer)
      await gathered(a)
      assert.deepEqual(emitted, [], 'held while the answer is awaited')
      const applied = Date.now()
      await a.setRemoteDescription(answer)
      await until(() => emitted.length > 0, MS, 'the held candidates')
      assert.ok(emitted[0] - applied >= 250, `released ${emitted[0] - applied} ms after the answer, before the timeout`)
    } finally {
      await closeBoth(a, b)
    }
  })

  test('bad values fail the connection with a TypeError or RangeError', async () => {
    for (const [value, name] of [
      ['yes', 'TypeError'],
      [5, 'TypeError'],
      [{ timeoutMs: -1 }, 'RangeError'],
      [{ timeoutMs: 'soon' }, 'TypeError'],
    ]) {
      const pc = new RTCPeerConnection({ _ipc: ipc, candidateHold: value })
      const err = await pc.createOffer().then(
        () => null,
        (e) => e,
      )
      assert.ok(err, `candidateHold ${JSON.stringify(value)} was accepted`)
      assert.equal(err.name, name, `${JSON.stringify(value)}: ${err.message}`)
      assert.match(err.message, /candidateHold/)
      await pc.close()
    }
  })

  test('localDescription is null before setLocalDescription and has a=end-of-candidates only once complete', async () => {
    const { a, b } = pair()
    a.createDataChannel('described')
    try {
      assert.equal(a.localDescription, null)
      await a.setLocalDescription(await a.createOffer())
      const early = a.localDescription
      assert.equal(early.type, 'offer')
      if (a.iceGatheringState !== 'complete') assert.doesNotMatch(early.sdp, /a=end-of-candidates/)
      await gathered(a)
      assert.match(a.localDescription.sdp, /a=end-of-candidates/)
    } finally {
      await closeBoth(a, b)
    }
  })
})
