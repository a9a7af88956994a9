#!/usr/bin/env bash
# Lint, run by .ci/run before the tests: clippy with warnings as errors, rustfmt's check,
# and the TypeScript type checks of the library and of the tests (test/tsconfig.json).
# Needs the set-up: scripts/setup.sh adds clippy and rustfmt, npm ci installs typescript.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --all-targets -- -D warnings
cargo fmt --check
npx tsc --noEmit -p tsconfig.json
npx tsc -p test/tsconfig.json
