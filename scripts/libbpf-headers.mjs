#!/usr/bin/env node
// Prints an include folder holding the newest libbpf's BPF-side headers (<bpf/usdt.bpf.h>
// and the rest), from Debian sid's libbpf-dev, fetched with the matrix's private apt state
// (never the system's sources) and cached in .cache/kernels. The system's libbpf-dev
// (Debian 12: 1.1) is what most fixtures build with; this one is for the layouts newer
// libbpf headers have (libbpf 1.7's usdt.bpf.h reads base+index*scale arguments).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensurePackage } from '../test/vm/kernels.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const pkg = ensurePackage(path.join(root, '.cache/kernels'), 'sid', 'libbpf-dev', (m) => process.stderr.write(`libbpf-headers: ${m}\n`));
process.stdout.write(path.join(pkg, 'usr/include') + '\n');
