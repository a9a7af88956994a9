// Boots a kernel under QEMU (TCG: KVM guests crash on our machines) with the host's root
// shared read-only, runs a script in a chroot of it, and returns what it printed.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { buildInitramfs, EXIT_MARKER, INIT_MARKER } from './initramfs.mjs';

/** A guest that has not reached our init by then is stuck in early boot. */
const BOOT_DEADLINE_MS = 120_000;

/**
 * How each architecture (process.arch's names) boots: QEMU's binary and machine, the CPU
 * and the serial console. arm64: pauth-impdef is QEMU's own pointer-authentication hash,
 * far cheaper under TCG than the architected QARMA5 that every signed return pays for.
 */
const MACHINES = {
  x64: { qemu: 'qemu-system-x86_64', machine: [], cpu: 'max', console: 'ttyS0' },
  arm64: { qemu: 'qemu-system-aarch64', machine: ['-M', 'virt'], cpu: 'max,pauth-impdef=on', console: 'ttyAMA0' },
};

function bootOnce(kernel, initrd, outDir, { timeoutMs, echo, arch = 'x64', rootDir = '/', bootDeadlineMs = BOOT_DEADLINE_MS }) {
  const m = MACHINES[arch];
  return new Promise((resolve) => {
    const args = [
      // One vCPU: with two, x86 text patching (tracepoint static keys, kprobes use int3)
      // races under TCG and oopses or soft-locks the guest mid-test.
      ...m.machine, '-accel', 'tcg', '-cpu', m.cpu, '-m', '2G', '-smp', '1',
      '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
      '-kernel', kernel.vmlinuz, '-initrd', initrd,
      '-append', `console=${m.console} quiet loglevel=3 panic=-1 rdinit=/init`,
      '-virtfs', `local,path=${rootDir},mount_tag=host,security_model=none,readonly=on,multidevs=remap`,
      '-virtfs', `local,path=${outDir},mount_tag=out,security_model=none`,
    ];
    const start = Date.now();
    const qemu = spawn(m.qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let bootMs;
    let reason;
    const finish = (why) => {
      reason ??= why;
      qemu.kill('SIGKILL');
    };
    const bootTimer = setTimeout(() => bootMs === undefined && finish('never reached init'), bootDeadlineMs);
    const runTimer = setTimeout(() => finish(`timed out after ${timeoutMs / 1000} s`), timeoutMs);
    const onData = (d) => {
      const text = d.toString();
      output += text;
      if (bootMs === undefined && output.includes(INIT_MARKER)) bootMs = Date.now() - start;
      if (echo) process.stdout.write(text);
    };
    qemu.stdout.on('data', onData);
    qemu.stderr.on('data', onData);
    qemu.on('error', (e) => finish(`qemu: ${e.message}`));
    qemu.on('exit', () => {
      clearTimeout(bootTimer);
      clearTimeout(runTimer);
      const m = new RegExp(`${EXIT_MARKER}(\\d+)`).exec(output);
      resolve({
        output,
        bootMs,
        totalMs: Date.now() - start,
        exitCode: m ? Number(m[1]) : undefined,
        reason: m ? undefined : (reason ?? 'guest stopped without running the command'),
      });
    });
  });
}

/**
 * Runs `command` (a shell command, from `cwd`) in a guest booted on `kernel`. Retries once
 * when the guest dies before our init (TCG guests sometimes oops in early boot).
 * Elsewhere than x64: `arch` (process.arch's name), `rootDir` (that architecture's root,
 * shared as the guest's /) and `busybox` (a static one of that architecture, its init).
 */
export async function runInGuest(kernel, command, { cwd, timeoutMs = 20 * 60_000, echo = false, env = {}, arch = 'x64', rootDir = '/', busybox, bootDeadlineMs }) {
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'nodebpf-vm-'));
  const exports = Object.entries({
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    NODEBPF_GUEST_KERNEL: kernel.label,
    NODEBPF_GUEST_OUT: '/run/nodebpf-out',
    ...env,
  })
    .map(([k, v]) => `export ${k}='${String(v).replace(/'/g, "'\\''")}'`)
    .join('\n');
  const script = `${exports}\ncd '${cwd}' || exit 125\n${command}\n`;
  const initrd = path.join(outDir, '..', `${path.basename(outDir)}.cpio`);
  writeFileSync(initrd, buildInitramfs(kernel.modulesDir, script, busybox));
  const boot = { timeoutMs, echo, arch, rootDir, bootDeadlineMs };
  let result = await bootOnce(kernel, initrd, outDir, boot);
  let attempts = 1;
  if (result.bootMs === undefined) {
    attempts++;
    if (echo) process.stdout.write(`\nnodebpf-vm: ${kernel.label}: ${result.reason}; booting once more\n`);
    result = await bootOnce(kernel, initrd, outDir, boot);
  }
  return { ...result, attempts, outDir };
}
