#!/usr/bin/env node
// The unprivileged half: runs as any user, starts the helper through a launcher that
// gives it the capabilities, and reads its JSON lines. Nothing here calls bpf(2).
//   NODEBPF_HELPER_NODE=/opt/app/node-bpf node app.mjs BINARY PATTERN [PID] [SECONDS]
// where /opt/app/node-bpf is a copy of node given the capabilities once, as root:
//   install -m 755 "$(command -v node)" /opt/app/node-bpf
//   setcap cap_bpf,cap_perfmon+ep /opt/app/node-bpf
// (or NODEBPF_HELPER_NODE="sudo -n node" with a sudoers rule for the helper).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const [binary, pattern, pid, seconds = '5'] = process.argv.slice(2);
const launcher = (process.env.NODEBPF_HELPER_NODE ?? process.execPath).split(' ');
const helperPath = fileURLToPath(new URL('helper.mjs', import.meta.url));
const helper = spawn(launcher[0], [...launcher.slice(1), helperPath, binary, pattern, ...(pid ? [pid] : [])], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const calls = new Map();
createInterface({ input: helper.stdout }).on('line', (line) => {
  const msg = JSON.parse(line);
  if (msg.type === 'call') calls.set(msg.function, (calls.get(msg.function) ?? 0) + 1);
  else console.error(msg.type === 'error' ? `helper: ${msg.code}: ${msg.message}` : `helper: attached ${msg.functions} functions via ${msg.mechanism}`);
});
const timer = setTimeout(() => helper.stdin.end(), Number(seconds) * 1000);
helper.on('exit', (code) => {
  clearTimeout(timer);
  console.log(JSON.stringify(Object.fromEntries(calls)));
  process.exitCode = code ?? 1;
});
// Closing the helper's stdin is how the app says "stop".
process.once('SIGINT', () => helper.stdin.end());
