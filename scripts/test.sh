#!/usr/bin/env bash
# The test command: build, then the Rust unit tests and the vitest suites on this kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/mounts.sh
cargo test -q -p nodebpf-core
mkdir -p target
npx vitest run --reporter=default --reporter=json --outputFile=target/vitest.json
node -e '
  const r = JSON.parse(require("fs").readFileSync("target/vitest.json", "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`native: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
'
