// Runs inside a matrix guest: records features() and runs the vitest kernel suites (the
// unit project does not depend on the kernel: the host runs it), leaving
// features.json and vitest.json in $NODEBPF_GUEST_OUT for the host.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { features } from '../../dist/index.js';

const out = process.env.NODEBPF_GUEST_OUT ?? '/tmp';
const f = await features();
writeFileSync(path.join(out, 'features.json'), JSON.stringify(f));
console.log(`features: ${JSON.stringify(f)}`);
const r = spawnSync(
  process.execPath,
  ['node_modules/vitest/vitest.mjs', 'run', '--project', 'kernel', '--reporter=default', '--reporter=json', `--outputFile=${path.join(out, 'vitest.json')}`],
  { stdio: 'inherit', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } },
);
process.exit(r.status ?? 1);
