#!/usr/bin/env bash
# The test command: build, then the Rust unit tests and the vitest suites on this kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/mounts.sh
cargo test -q -p nodebpf-core 2>&1 | tail -n 3
npx vitest run
