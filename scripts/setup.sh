#!/usr/bin/env bash
# Installs what the build and tests need, once. Quick when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# setcap: the non-root tests; objdump: the glibc floor check; script: the pty test.
for pair in clang:clang llc:llvm bpftool:bpftool gcc:gcc setpriv:util-linux script:util-linux \
  make:make qemu-system-x86_64:qemu-system-x86 xz:xz-utils zstd:zstd setcap:libcap2-bin \
  objdump:binutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
# The kernel matrix's guests run a static busybox as their init.
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need_apt+=(busybox-static); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to apt-get install ${need_apt[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# npm ci when the lockfile changed since the last install.
stamp=node_modules/.nodebpf-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  # npm 11 leaves other platforms' optional packages of @napi-rs/cli's helpers out of
  # the lockfile and then refuses `npm ci` as "out of sync"; `npm install` from the same
  # lockfile installs the same tree.
  npm ci --no-audit --no-fund --loglevel=error 2>/dev/null \
    || npm install --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required to build from source" >&2; exit 1; }
