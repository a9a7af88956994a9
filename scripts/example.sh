#!/usr/bin/env bash
# The main job on a fresh machine: set-up and build, then nodebpf counts the libuv
# filesystem calls of a Node one-liner that stats '/' 100 times.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/mounts.sh
exec node dist/cli/main.js funccount 'uprobe:node:uv_fs_*' -- \
  node -e "for (let i = 0; i < 100; i++) require('fs').statSync('/')"
