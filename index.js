'use strict'

// The public surface: the native classes made EventEmitters. All behaviour lives in Rust
// (src/); this file only forwards calls and turns event batches into emit() calls.

const { EventEmitter } = require('node:events')
const path = require('node:path')
const { NativePionIpc } = require('./binding.js')

function resolvePackage(name) {
  try {
    return path.dirname(require.resolve(`${name}/package.json`))
  } catch {
    return null
  }
}

function defaultLogger(line) {
  console.warn(line)
}

// A throwing listener must not cost the rest of the batch its delivery; its error still
// surfaces as an uncaught exception, as it would from any EventEmitter.
function rethrowLater(err) {
  process.nextTick(() => {
    throw err
  })
}

class PionIpc extends EventEmitter {
  #native
  #logger
  #dispatch = (batch) => {
    for (const [name, ...args] of batch) {
      if (name === 'log') {
        try {
          this.#logger(args[0])
        } catch {
          // a broken logger must not break anything
        }
      } else if (this.listenerCount(name) > 0) {
        try {
          this.emit(name, ...args)
        } catch (err) {
          rethrowLater(err)
        }
      }
    }
  }

  constructor(options) {
    super()
    this.#native = new NativePionIpc(options)
    this.#logger = options?.logger ?? defaultLogger
  }

  get started() {
    return this.#native.started
  }

  /** The sidecar's process id while one runs, else null. */
  get pid() {
    return this.#native.pid
  }

  async start() {
    return this.#native.start(this.#dispatch, resolvePackage)
  }

  async stop(timeout) {
    return this.#native.stop(timeout)
  }

  async request(method, opts, payload) {
    return this.#native.request(method, opts, payload)
  }
}

module.exports = { PionIpc }
