// The boundary's single sources of truth: the TypeScript types napi-rs generates from
// crates/napi (checked in as ts/binding.ts), and the error codes the Rust core declares.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import type { BpfErrorCode } from '../../dist/index.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const addon = createRequire(import.meta.url)(path.join(ROOT, 'prebuilt/linux-x64/nodebpf.napi.glibc.node')) as {
  errorCodes(): string[];
};

/** Every code of the union, listed where the compiler checks it is complete. */
const CODES: Record<BpfErrorCode, true> = {
  EPERM: true,
  ENOENT: true,
  EINVAL: true,
  RANGE: true,
  VERIFIER: true,
  BAD_OBJECT: true,
  UNSUPPORTED: true,
  CLOSED: true,
  BUSY: true,
  STALE: true,
  INCOMPATIBLE: true,
  INTERNAL: true,
  EIO: true,
};

describe('the N-API boundary', () => {
  it("the TypeScript BpfErrorCode union is the Rust core's set of codes", () => {
    expect(Object.keys(CODES).sort()).toEqual(addon.errorCodes().sort());
  });

  const generated = path.join(ROOT, 'target/napi/index.d.ts');
  it.skipIf(!existsSync(generated))('ts/binding.ts is what napi-rs generated from crates/napi (review and copy on change)', () => {
    expect(readFileSync(path.join(ROOT, 'ts/binding.ts'), 'utf8')).toBe(readFileSync(generated, 'utf8'));
  });
});
