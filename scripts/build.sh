#!/usr/bin/env bash
# Set-up and build: the N-API addon into prebuilt/, the BPF fixtures, the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

npx napi build --release --manifest-path crates/napi/Cargo.toml --package-json-path package.json \
  --output-dir target/napi --strip >/dev/null
dest=prebuilt/linux-x64
mkdir -p "$dest"
cmp -s target/napi/nodebpf.node "$dest/nodebpf.napi.glibc.node" 2>/dev/null \
  || cp target/napi/nodebpf.node "$dest/nodebpf.napi.glibc.node"

make -s -C test/fixtures
make -s -C examples
npx tsc -p tsconfig.json
make -s -C bpf
chmod +x dist/cli/main.js
