#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a while: scripts/fuzz.sh [seconds-per-target]
#
# Works on stable Rust: cargo-fuzz passes nightly-only flags (-Zsanitizer, sanitizer
# coverage options), so RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. AddressSanitizer
# is used when the toolchain ships its runtime (rustup's x86_64 Linux stable does), else
# none; FUZZ_SANITIZER=address|none overrides the choice. -malloc_limit_mb is only enforced
# per allocation under a sanitizer (libFuzzer needs its malloc hooks). FUZZ_ARGS adds
# libFuzzer flags after the fixed ones (the last of a flag wins), e.g. FUZZ_ARGS=-max_len=65536;
# without -max_len libFuzzer makes no input over 4096 bytes and truncates larger corpus files.
# Corpora go to fuzz/corpus/<target>, crash reproducers to fuzz/artifacts/<target>/, logs to
# fuzz/target/fuzz-logs/. Exits non-zero if any target crashed (or failed to build).
set -uo pipefail

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
start=$(date +%s)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked || exit 1
fi
echo "== $(cargo fuzz --version) ($(rustc --version))"

export RUSTC_BOOTSTRAP=1

sanitizer="${FUZZ_SANITIZER:-}"
if [ -z "$sanitizer" ]; then
  sysroot=$(rustc --print sysroot)
  host=$(rustc -vV | sed -n 's/^host: //p')
  if compgen -G "$sysroot/lib/rustlib/$host/lib/librustc-*_rt.asan.*" >/dev/null; then
    sanitizer=address
  else
    sanitizer=none
  fi
fi
echo "== sanitizer: $sanitizer"

targets=$(cargo fuzz list) || exit 1
echo "== building: $(echo $targets)"
cargo fuzz build --sanitizer "$sanitizer" || exit 1
built=$(date +%s)

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
failed=()
summary=()
for target in $targets; do
  echo "== fuzzing $target for ${seconds}s"
  log="$logs/$target.log"
  cargo fuzz run --sanitizer "$sanitizer" "$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=64 ${FUZZ_ARGS:-} 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  # libFuzzer's last status line: "#RUNS DONE cov: ... exec/s: N rss: ..."
  runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $2}')
  rate=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'exec/s: [0-9]+' | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | awk '{print $2}')
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    summary+=("$target: CRASHED (exit $status), see $log and fuzz/artifacts/$target/")
  else
    summary+=("$target: ok, ${runs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}")
  fi
done

end=$(date +%s)
echo "== summary (sanitizer $sanitizer, ${seconds}s per target)"
printf '   %s\n' "${summary[@]}"
echo "   setup+build $((built - start))s, total $((end - start))s"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "== crashed: ${failed[*]}" >&2
  exit 1
fi
