#!/usr/bin/env bash
# tracefs and bpffs, which tracepoints and pinning need; mounted only when missing.
set -euo pipefail
if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing
fi
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf
fi
