// A tiny initramfs: busybox, the modules that mount the host over 9p with an overlay,
// an init script and the command to run. Written as a newc cpio archive.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Modules the guest needs; any that is built into the kernel is simply not found.
 * nf_conntrack and x_tables are there for their BTF: kfuncs and variables that live in a module
 * (test/module-ksyms.test.ts); crc32c_generic is what its libcrc32c loads by name.
 */
const WANTED = ['virtio_pci', '9pnet_virtio', '9p', 'overlay', 'crc32c_generic', 'nf_conntrack', 'x_tables'];

function findModules(dir, out = new Map()) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) findModules(p, out);
    else {
      const m = /^(.+)\.ko(\.xz|\.zst|\.gz)?$/.exec(e.name);
      if (m) out.set(m[1].replace(/-/g, '_'), p);
    }
  }
  return out;
}

function decompress(file) {
  if (file.endsWith('.xz')) return execFileSync('xz', ['-dc', file], { maxBuffer: 1 << 28 });
  if (file.endsWith('.zst')) return execFileSync('zstd', ['-dcq', file], { maxBuffer: 1 << 28 });
  if (file.endsWith('.gz')) return execFileSync('gzip', ['-dc', file], { maxBuffer: 1 << 28 });
  return readFileSync(file);
}

/** `depends=` from a module's .modinfo. */
function dependsOf(ko) {
  const i = ko.indexOf(Buffer.from('\0depends='));
  if (i < 0) return [];
  const start = i + '\0depends='.length;
  const end = ko.indexOf(0, start);
  return ko.subarray(start, end).toString().split(',').filter(Boolean).map((d) => d.replace(/-/g, '_'));
}

/** The wanted modules and their dependencies, dependencies first. */
export function moduleClosure(modulesDir) {
  const all = findModules(modulesDir);
  const order = [];
  const contents = new Map();
  const visit = (name) => {
    if (contents.has(name) || !all.has(name)) return;
    const ko = decompress(all.get(name));
    contents.set(name, ko);
    for (const d of dependsOf(ko)) visit(d);
    order.push(name);
  };
  WANTED.forEach(visit);
  return { order, contents };
}

function cpioEntry(name, mode, data = Buffer.alloc(0)) {
  const fields = [
    '070701', 0, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0,
  ].map((v, i) => (i === 0 ? v : v.toString(16).padStart(8, '0')));
  const header = Buffer.from(fields.join('') + name + '\0');
  const pad = (n) => Buffer.alloc((4 - (n % 4)) % 4);
  return Buffer.concat([header, pad(header.length), data, pad(data.length)]);
}

/** files: [path, mode (e.g. 0o100755), Buffer] and dirs: [path]. */
export function cpio(dirs, files) {
  const parts = dirs.map((d) => cpioEntry(d, 0o40755));
  for (const [p, mode, data] of files) parts.push(cpioEntry(p, mode, data));
  parts.push(cpioEntry('TRAILER!!!', 0));
  return Buffer.concat(parts);
}

export const INIT_MARKER = 'NODEBPF-INIT-REACHED';
export const EXIT_MARKER = 'NODEBPF-EXIT=';

/**
 * The init script: mount the host's root read-only over 9p, put a tmpfs overlay on it,
 * chroot in with proc/sys/dev/tracefs/bpffs mounted, run /run.sh, power off. /tmp stays
 * the host's (writable through the overlay): the repo under test may live there.
 */
function initScript(moduleOrder) {
  return `#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /host /rw /newroot /out
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
echo ${INIT_MARKER}
for m in ${moduleOrder.join(' ')}; do $B insmod /modules/$m.ko || echo "nodebpf-vm: insmod $m failed"; done
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /host || echo "nodebpf-vm: 9p host mount failed"
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /out || echo "nodebpf-vm: 9p out mount failed"
$B mount -t tmpfs -o size=1536m tmpfs /rw
$B mkdir -p /rw/upper /rw/work
$B mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || echo "nodebpf-vm: overlay failed"
$B mount -t proc proc /newroot/proc
$B mount -t sysfs sysfs /newroot/sys
$B mount -t devtmpfs devtmpfs /newroot/dev
$B mkdir -p /newroot/dev/pts
$B mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts && $B ln -sf pts/ptmx /newroot/dev/ptmx
$B mount -t tmpfs tmpfs /newroot/run
$B mount -t tracefs nodev /newroot/sys/kernel/tracing
$B mount -t debugfs nodev /newroot/sys/kernel/debug
$B mount -t bpf bpf /newroot/sys/fs/bpf
$B mount -t securityfs securityfs /newroot/sys/kernel/security
$B mkdir -p /newroot/run/nodebpf-out
$B mount --bind /out /newroot/run/nodebpf-out
$B cp /run.sh /newroot/run/nodebpf-run.sh
$B chroot /newroot /bin/sh /run/nodebpf-run.sh
echo "${EXIT_MARKER}$?"
$B sync
$B poweroff -f
`;
}

/** `busybox`: a static busybox for the guest's architecture (default: the host's). */
export function buildInitramfs(modulesDir, runScript, busybox = '/bin/busybox') {
  if (!existsSync(busybox) || statSync(busybox).size < 500_000) {
    throw new Error('busybox-static is needed for the guest initramfs (apt-get install busybox-static)');
  }
  const { order, contents } = moduleClosure(modulesDir);
  const files = [
    ['init', 0o100755, Buffer.from(initScript(order))],
    ['run.sh', 0o100755, Buffer.from(runScript)],
    ['bin/busybox', 0o100755, readFileSync(busybox)],
    ...order.map((m) => [`modules/${m}.ko`, 0o100644, contents.get(m)]),
  ];
  return cpio(['bin', 'modules'], files);
}
