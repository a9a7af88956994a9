#!/usr/bin/env bash
# The test command: build, the Rust unit tests and the vitest suites on this machine's
# kernel, then the same suites on Debian's 6.1, 6.12 and newest kernels under QEMU
# (test/vm/matrix.mjs). NODEBPF_SKIP_MATRIX=1 runs the native part alone.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh || exit 1
bash scripts/mounts.sh || exit 1
status=0
cargo test -q -p nodebpf-core || status=1
mkdir -p target
npx vitest run --reporter=default --reporter=json --outputFile=target/vitest.json || status=1
native=$(node -e '
  const r = JSON.parse(require("fs").readFileSync("target/vitest.json", "utf8"));
  console.log(r.numPassedTests, r.numFailedTests, r.numPendingTests + r.numTodoTests);
') || status=1
read -r p f s <<<"${native:-0 1 0}"
echo "native: $p passed, $f failed, $s skipped"
if [ "${NODEBPF_SKIP_MATRIX:-0}" != 1 ]; then
  node test/vm/matrix.mjs | tee target/matrix.log || status=1
  read -r mp mf ms < <(sed -n 's/^matrix: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' target/matrix.log)
  p=$((p + ${mp:-0})); f=$((f + ${mf:-1})); s=$((s + ${ms:-0}))
fi
echo "total: $p passed, $f failed, $s skipped"
exit $status
