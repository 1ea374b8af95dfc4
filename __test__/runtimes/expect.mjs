// What check.mjs must have seen, for the runtimes matrix (matrix.mjs) and the per-platform
// run of the workflow (platform.mjs).
import assert from 'node:assert/strict'

/**
 * `reader`: the default stdout reader expected ('loop', 'thread', or 'unknown' where thread
 * names cannot be read). `platform`: process.platform of the run (a SIGKILL from JavaScript
 * is TerminateProcess on Windows: exit code 1 and no signal).
 */
export function assertCheck(result, { name, reader, platform = process.platform }) {
  assert.equal(result.reader, reader, `stdout reader under ${name}`)
  assert.deepEqual(result.received, {
    b: ['text a→b', [1, 2, 3]],
    a: ['text b→a', [250, 0, 7]],
  })
  assert.deepEqual(result.crash, platform === 'win32' ? { code: 1, signal: null } : { code: null, signal: 'SIGKILL' })
  assert.deepEqual(result.worker, { flowing: true, sidecarGone: true }, `worker teardown under ${name}`)
  assert.equal(result.stopped, true)
}
