// INODE_STORAGE and SK_STORAGE filled by BPF programs (lsm/file_open, fentry/udp_sendmsg)
// and read from JS keyed by fds. Tracing and LSM programs do not load on our own kernel
// (lockdown): the kernel matrix runs this
// (node test/vm/matrix.mjs --kernel 6.12 --exec 'npx vitest run test/storage-progs.test.ts').
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket, type Socket } from 'node:dgram';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { fixture, kernelFeatures as f, LSM, lsmActive } from './helpers.js';

const N = 5;


/** bpf_sk_storage_get from tracing programs came in 5.11. */
const [major, minor] = f.kernel.split('.').map(Number);
const skFromTracing = f.fentry && (major > 5 || (major === 5 && minor >= 11));
const SK = skFromTracing ? '' : ` [skipped: this kernel (${f.kernel}) has no bpf_sk_storage_get from fentry programs (5.11+) or no trampolines]`;

const fdOf = (s: Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;

/**
 * One datagram to 127.0.0.1:port. Where loopback is down (the guests') the send fails with
 * ENETUNREACH, after udp_sendmsg ran: it counts the same.
 */
const send = (s: Socket, port: number, byte: number) =>
  new Promise<void>((resolve, reject) =>
    s.send(Buffer.from([byte]), port, '127.0.0.1', (e) => (e && (e as NodeJS.ErrnoException).code !== 'ENETUNREACH' ? reject(e) : resolve())),
  );

describe('local storage filled by programs', () => {
  it.skipIf(!lsmActive)(`INODE_STORAGE: lsm/file_open counts each open of a file; JS reads the count by an fd of it${LSM}`, async () => {
    // On tmpfs: on an overlay (the guests' /tmp) one open is two files with one inode number.
    const dir = mkdtempSync('/run/nodebpf-inode-');
    const file = path.join(dir, 'counted');
    const other = path.join(dir, 'other');
    writeFileSync(file, 'x');
    writeFileSync(other, 'y');
    try {
      using obj = await load(fixture('storage_progs.bpf.o'), { globals: { target_tgid: process.pid }, programs: { count_send: { autoload: false } } });
      obj.program('count_open').attach();
      const key = openSync(file, 'r'); // counted too: 1
      try {
        for (let i = 0; i < N; i++) closeSync(openSync(file, 'r'));
        const opens = obj.map('inode_opens', { key: 'i32', value: 'u64' });
        expect(opens.get(key)).toBe(BigInt(N + 1));
        const otherFd = openSync(other, 'r');
        expect(opens.get(otherFd)).toBe(1n);
        closeSync(otherFd);
        expect(opens.delete(key)).toBe(true);
        expect(opens.get(key)).toBeUndefined();
        closeSync(openSync(file, 'r'));
        expect(opens.get(key)).toBe(1n);
      } finally {
        closeSync(key);
      }
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it.skipIf(!skFromTracing)(`SK_STORAGE: fentry/udp_sendmsg counts the sends on each socket; JS reads the count by the socket's fd${SK}`, async () => {
    using obj = await load(fixture('storage_progs.bpf.o'), { globals: { target_tgid: process.pid }, programs: { count_open: { autoload: false } } });
    obj.program('count_send').attach();
    const rx = createSocket('udp4');
    const tx = createSocket('udp4');
    const once = createSocket('udp4');
    try {
      await Promise.all([rx, tx, once].map((s) => new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))));
      const port = rx.address().port;
      for (let i = 0; i < N; i++) await send(tx, port, i);
      await send(once, port, 0);
      const sends = obj.map('sock_sends', { key: 'i32', value: 'u64' });
      expect(sends.get(fdOf(tx))).toBe(BigInt(N));
      expect(sends.get(fdOf(once))).toBe(1n);
      expect(sends.get(fdOf(rx))).toBeUndefined(); // received only
      sends.set(fdOf(tx), 100n);
      await send(tx, port, 9);
      expect(sends.get(fdOf(tx))).toBe(101n);
    } finally {
      for (const s of [rx, tx, once]) s.close();
    }
  });
});
