#!/usr/bin/env bash
# Installs what the build and tests need, once. Quick when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# setcap: the non-root tests; objdump: the glibc floor check; script: the pty test.
for pair in clang:clang llc:llvm bpftool:bpftool gcc:gcc setpriv:util-linux script:util-linux \
  make:make qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm xz:xz-utils zstd:zstd setcap:libcap2-bin \
  objdump:binutils g++:g++; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
# The USDT fixtures' probes (<sys/sdt.h>).
echo '#include <sys/sdt.h>' | gcc -E -x c - >/dev/null 2>&1 || need_apt+=(systemtap-sdt-dev)
# The kernel matrix's guests run a static busybox as their init.
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need_apt+=(busybox-static); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to apt-get install ${need_apt[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# npm ci when the lockfile changed since the last install. The lockfile lists every
# platform's optional packages (@napi-rs/cli's native helpers); npm ci installs the ones
# for this platform and refuses a lockfile that lacks any ("Missing: … from lock file").
# Regenerate it with `npm install --package-lock-only`, never by falling back here to
# `npm install`, which would rewrite it during the build.
stamp=node_modules/.nodebpf-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required to build from source" >&2; exit 1; }
# Lint (.ci/run) runs `cargo clippy` and `cargo fmt`: toolchains installed with rustup's
# minimal profile lack them. `rustup component add` is a no-op when they are there.
for pair in clippy:clippy fmt:rustfmt; do
  if ! cargo "${pair%%:*}" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || { echo "setup: no cargo ${pair%%:*}, and no rustup to add ${pair#*:}" >&2; exit 1; }
    rustup component add "${pair#*:}"
  fi
done
