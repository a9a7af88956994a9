#!/usr/bin/env bash
# The linux-arm64 half of the package, cross-built on this x86-64 machine (`npm run
# build:all` runs it after scripts/build.sh; `npm pack` refuses a tarball without it):
# - the addon, prebuilt/linux-arm64/nodebpf.napi.glibc.node: sid's rustc with Debian's
#   arm64 std and bookworm's cross gcc as linker and C compiler (lzma-sys builds C), all
#   unpacked under .cache/arm64 (scripts/arm64-toolchain.mjs), built in target/aarch64;
#   the highest GLIBC_ version it asks for is printed and must be <= the x64 one's 2.34;
# - the CLI's BPF programs for arm64, dist/bpf/arm64/*.bpf.o (bpf/Makefile `arm64`), against
#   a vmlinux.h from the BTF of Debian's arm64 kernel (test/vm/arm64.mjs ensureVmlinuxH).
# The first run downloads about 270 MB of .debs (180 MB of toolchain, 90 MB of the arm64
# kernel for vmlinux.h) and builds from scratch: 6 minutes on this 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
started=$SECONDS

# An assignment, so that set -e sees the helper fail (`eval "$(...)"` would not).
toolchain=$(node scripts/arm64-toolchain.mjs)
eval "$toolchain"
export CARGO_TARGET_DIR=$PWD/target/aarch64
# What `napi build --strip` does for the x64 addon.
export CARGO_PROFILE_RELEASE_STRIP=symbols
cargo build --release -p nodebpf-napi --target aarch64-unknown-linux-gnu
built=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/libnodebpf_napi.so

machine=$(od -An -tu2 -j18 -N2 "$built" | tr -d ' ')
[ "$machine" = 183 ] || { echo "build-arm64: $built is not an arm64 ELF (e_machine $machine)" >&2; exit 1; }
# The glibc floor, as test/package.test.ts checks it for both addons.
floor=$("$ARM64_OBJDUMP" -T "$built" | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n | tail -1)
echo "build-arm64: the addon asks for glibc ${floor#GLIBC_} at most (x64 promises <= 2.34)"
[ "${floor#GLIBC_2.}" -le 34 ] || { echo "build-arm64: $floor is newer than 2.34" >&2; exit 1; }

dest=prebuilt/linux-arm64
mkdir -p "$dest"
# Replaced by rename, never rewritten in place (as scripts/build.sh does for x64).
if ! cmp -s "$built" "$dest/nodebpf.napi.glibc.node" 2>/dev/null; then
  cp "$built" "$dest/.nodebpf.napi.glibc.node.tmp"
  mv -f "$dest/.nodebpf.napi.glibc.node.tmp" "$dest/nodebpf.napi.glibc.node"
fi
# Its time is when it was last built (scripts/check-pack.mjs compares it with the x64 one's).
touch "$dest/nodebpf.napi.glibc.node"

vmlinux=$(node -e "import('./test/vm/arm64.mjs').then((m) => console.log(m.ensureVmlinuxH()))")
make -s -C bpf arm64 VMLINUX_ARM64="$vmlinux"
echo "build-arm64: $dest/nodebpf.napi.glibc.node $(stat -c %s "$dest/nodebpf.napi.glibc.node") bytes, dist/bpf/arm64: $(ls dist/bpf/arm64 | wc -l) objects, $((SECONDS - started)) s"
