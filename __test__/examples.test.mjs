// The examples in examples/ run as a user would run them (child processes, already inside the
// network namespace of `npm test`), and print what they promise.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const examples = fileURLToPath(new URL('../examples/', import.meta.url))

/** Runs `node examples/<script> ...args`; resolves { code, signal, stdout, stderr }, killing it after `ms`. */
function runExample(script, args = [], ms = 55000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [examples + script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, ms)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

function assertExit0(r, what) {
  assert.equal(r.timedOut, false, `${what} was killed after its time limit\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`)
  assert.equal(r.code, 0, `${what} exited with ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`)
}

const lines = (s) => s.split('\n').filter(Boolean)

test('chat --demo: bob gets the three lines and alice gets them back in upper case', { timeout: 60000 }, async () => {
  const r = await runExample('chat.mjs', ['--demo'])
  assertExit0(r, 'chat.mjs --demo')
  const out = lines(r.stdout)
  for (const line of ['hello bob', 'how are you?', 'bye for now']) {
    assert.ok(out.includes(`alice says: ${line}`), r.stdout)
    assert.ok(out.includes(`bob got: ${line}`), r.stdout)
    assert.ok(out.includes(`alice got: ${line.toUpperCase()}`), r.stdout)
  }
  // echoes arrive in the order the lines were sent
  const echoes = out.filter((l) => l.startsWith('alice got: '))
  assert.deepEqual(echoes, ['alice got: HELLO BOB', 'alice got: HOW ARE YOU?', 'alice got: BYE FOR NOW'])
  assert.equal(out.at(-1), 'chat: bye')
})

test('two-processes: both peers connect through the signalling server and greet each other', { timeout: 60000 }, async () => {
  const r = await runExample('two-processes.mjs')
  assertExit0(r, 'two-processes.mjs')
  const out = lines(r.stdout)
  assert.match(out[0], /^signalling server on http:\/\/127\.0\.0\.1:\d+$/)
  for (const [me, other] of [['offer', 'answer'], ['answer', 'offer']]) {
    assert.ok(out.some((l) => l.startsWith(`[${me}] connected: channel "greetings" open (10.99.0.`)), r.stdout)
    assert.ok(out.some((l) => new RegExp(`^\\[${me}\\] received: hello from the ${other}er \\(pid \\d+\\)$`).test(l)), r.stdout)
    assert.ok(out.includes(`[${me}] done`), r.stdout)
  }
  assert.equal(out.at(-1), 'offer exited with 0, answer exited with 0')
})

test('file-transfer: 5 MB of random data arrive intact, SHA-256 checked on both sides', { timeout: 60000 }, async () => {
  const r = await runExample('file-transfer.mjs', ['--size-mb', '5'])
  assertExit0(r, 'file-transfer.mjs --size-mb 5')
  const out = lines(r.stdout)
  assert.match(out[0], /^generated 5 MB of random data in \/.+\/random\.bin$/)
  assert.ok(out.some((l) => /^receiver: receiving random\.bin \(5000000 bytes\) into /.test(l)), r.stdout)
  assert.ok(out.some((l) => /^sender: sent 5000000 bytes in [\d.]+ s \([\d.]+ MB\/s\)$/.test(l)), r.stdout)
  assert.ok(out.some((l) => /^receiver: got 5000000 bytes in [\d.]+ s \([\d.]+ MB\/s\)$/.test(l)), r.stdout)
  const digests = out.filter((l) => / SHA-256 [0-9a-f]{64}$/.test(l)).map((l) => l.slice(-64))
  assert.equal(digests.length, 2, r.stdout)
  assert.equal(digests[0], digests[1])
  assert.ok(out.includes("receiver: SHA-256 matches the sender's"), r.stdout)
  assert.ok(out.includes('sender: receiver confirmed the SHA-256: match'), r.stdout)
  assert.equal(out.at(-1), 'sender exited with 0, receiver exited with 0')
  // the progress bar on stderr reaches 100 % with a rate
  assert.match(r.stderr, /\] 100%  5\.0\/5\.0 MB  [\d.]+ MB\/s/)
})
