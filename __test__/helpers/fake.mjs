// Wrapper scripts that run the fake sidecar in a given mode (tests pass them as binPath).
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const fake = fileURLToPath(new URL('../fixtures/fake-sidecar.mjs', import.meta.url))

/** A temp folder of wrapper scripts; `bin(mode)` returns one, `cleanup()` removes them. */
export function fakeSidecars() {
  const dir = mkdtempSync(join(tmpdir(), 'pnr-fake-'))
  return {
    bin(mode) {
      const path = join(dir, mode)
      writeFileSync(path, `#!/bin/sh\nexec "${process.execPath}" "${fake}" ${mode}\n`, { mode: 0o755 })
      return path
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
