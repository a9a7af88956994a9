#!/usr/bin/env bash
# Compiles third-party BPF sources into a corpus of objects for scripts/load-table.mjs,
# the way their own Makefiles do (the objects stay outside the repo: they are not ours).
#   bash scripts/build-corpus.sh OUT LABEL=SRC_DIR[:VMLINUX_DIR] ...
# e.g. bash scripts/build-corpus.sh /work/corpus/objs \
#        libbpf-tools=/work/corpus/src/bcc/libbpf-tools \
#        libbpf-bootstrap=/work/corpus/src/lbb/examples/c:/work/corpus/src/vmlinux.h/include/x86
# Each SRC_DIR/*.bpf.c becomes OUT/LABEL/NAME.bpf.o. VMLINUX_DIR (the folder holding
# vmlinux.h) defaults to SRC_DIR/x86 (bcc's libbpf-tools ship theirs there). Flags:
# libbpf-tools: clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_x86 -I x86/, then
# llvm-strip -g (softirqs with -mcpu=v3); libbpf-bootstrap: clang -g -O2 -target bpf, then
# `bpftool gen object` (libbpf's static linker). Both get clang's own system include dirs
# last (libbpf-bootstrap's CLANG_BPF_SYS_INCLUDES: asm/ lives in the multiarch dir) and
# LIBBPF_INCLUDE (a folder holding bpf/*.h; default: the system's) first: their Makefiles
# use the headers of the libbpf they vendor, and Debian's libbpf 1.1 lacks BPF_UPROBE etc.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
out=$(realpath -m "$1")
shift
clang=${CLANG:-clang}
bpftool=${BPFTOOL:-/usr/sbin/bpftool}
libbpf_include=()
[ -n "${LIBBPF_INCLUDE:-}" ] && libbpf_include=(-I"$(realpath "$LIBBPF_INCLUDE")")
# The system include dirs, after the others (as libbpf-bootstrap's Makefile adds them).
mapfile -t sys_includes < <("$clang" -v -E - </dev/null 2>&1 |
  sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter\n\1|p }')
built=0
failed=0
for arg in "$@"; do
  label=${arg%%=*}
  rest=${arg#*=}
  src=${rest%%:*}
  vmlinux=${rest#"$src"}
  vmlinux=${vmlinux#:}
  vmlinux=${vmlinux:-$src/x86}
  [ -f "$vmlinux/vmlinux.h" ] || { echo "build-corpus: no vmlinux.h in $vmlinux" >&2; exit 2; }
  mkdir -p "$out/$label"
  for c in "$src"/*.bpf.c; do
    name=$(basename "$c" .bpf.c)
    obj="$out/$label/$name.bpf.o"
    if [ "$vmlinux" = "$src/x86" ]; then
      extra=()
      [ "$name" = softirqs ] && extra=(-mcpu=v3)
      if (cd "$src" && "$clang" -g -O2 -Wall "${extra[@]}" -target bpf -D__TARGET_ARCH_x86 \
        "${libbpf_include[@]}" -Ix86/ "${sys_includes[@]}" -c "$name.bpf.c" -o "$obj") && llvm-strip -g "$obj"; then
        built=$((built + 1))
      else
        failed=$((failed + 1)); echo "build-corpus: $label/$name failed" >&2
      fi
    else
      tmp="$out/$label/$name.tmp.bpf.o"
      if (cd "$src" && "$clang" -g -O2 -target bpf -D__TARGET_ARCH_x86 -I. "${libbpf_include[@]}" -I"$vmlinux" \
        "${sys_includes[@]}" -c "$name.bpf.c" -o "$tmp") && "$bpftool" gen object "$obj" "$tmp"; then
        built=$((built + 1))
      else
        failed=$((failed + 1)); echo "build-corpus: $label/$name failed" >&2
      fi
      rm -f "$tmp"
    fi
  done
done
echo "build-corpus: $built objects in $out ($failed failed)"
