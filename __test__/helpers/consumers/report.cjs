'use strict'

// What a consumer's child process tells the test: one JSON object a line on stdout, and the
// pion-ipc sidecars it runs (its child processes named pion-ipc, read from /proc), so that
// the test can check they are gone once the child has exited.

const { existsSync, readFileSync, readdirSync, writeSync } = require('node:fs')

function report(event, fields = {}) {
  writeSync(1, `${JSON.stringify({ event, ...fields })}\n`)
}

/** The pids of this process's pion-ipc children ([] where there is no /proc). */
function sidecars() {
  const pids = []
  if (!existsSync('/proc/self/task')) return pids
  for (const tid of readdirSync('/proc/self/task')) {
    let children = ''
    try {
      children = readFileSync(`/proc/self/task/${tid}/children`, 'utf8')
    } catch {
      continue
    }
    for (const pid of children.split(/\s+/).filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'pion-ipc') pids.push(Number(pid))
      } catch {}
    }
  }
  return pids
}

/** Reports an error and leaves with status 1, for an 'error' event of a consumer. */
function fail(where) {
  return (err) => {
    report('error', { where, message: String(err?.message ?? err), type: err?.type ?? err?.code ?? null })
    process.exit(1)
  }
}

module.exports = { report, sidecars, fail }
