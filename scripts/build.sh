#!/usr/bin/env bash
# Set-up and build: the N-API addon into prebuilt/, the BPF fixtures, the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# napi-rs's CLI can exit 0 when its type generation fails after cargo succeeded: remove
# its outputs first, so a failed build leaves nothing stale to be tested.
rm -f target/napi/index.d.ts target/napi/nodebpf.node
npx napi build --release --manifest-path crates/napi/Cargo.toml --package-json-path package.json \
  --output-dir target/napi --strip >/dev/null
for out in target/napi/index.d.ts target/napi/nodebpf.node; do
  [ -s "$out" ] || { echo "build: napi build left no $out" >&2; exit 1; }
done
# The boundary's TypeScript types are napi-rs's, checked in as ts/binding.ts: a change
# on the Rust side shows up here and fails test/unit/boundary.test.ts until reviewed
# and copied (cp target/napi/index.d.ts ts/binding.ts).
if ! cmp -s target/napi/index.d.ts ts/binding.ts; then
  echo "build: the addon's generated types differ from ts/binding.ts; review: diff target/napi/index.d.ts ts/binding.ts" >&2
fi
# This machine's addon; scripts/build-arm64.sh cross-builds linux-arm64's on x86-64.
dest=prebuilt/linux-$(node -p process.arch)
mkdir -p "$dest"
# Replaced by rename, never rewritten in place: a running node has the old file mapped,
# and changing its pages under it crashes that process (SIGILL/SIGSEGV).
if ! cmp -s target/napi/nodebpf.node "$dest/nodebpf.napi.glibc.node" 2>/dev/null; then
  cp target/napi/nodebpf.node "$dest/.nodebpf.napi.glibc.node.tmp"
  mv -f "$dest/.nodebpf.napi.glibc.node.tmp" "$dest/nodebpf.napi.glibc.node"
fi

make -s -C test/fixtures
make -s -C examples
npx tsc -p tsconfig.json
node scripts/build-cjs.mjs
make -s -C bpf
chmod +x dist/cli/main.js
