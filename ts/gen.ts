// The API behind `nodebpf gen`: a BPF object (a path, or its bytes) to the TypeScript of its
// skeleton. Reads the object only (inspectObject): nothing is asked of the kernel, so a
// kfunc, kernel BTF or config this machine lacks does not stop it; no privilege needed.
import path from 'node:path';

import { bytes } from './check.js';
import { generateSkeleton, type GenerateOptions } from './btf/generate.js';
import { nativeAsync } from './errors.js';
import { addon } from './native.js';
import { readBytes, subject } from './object.js';

export type { GenerateOptions } from './btf/generate.js';

/**
 * The skeleton of a BPF object as TypeScript source: interfaces for its structs, codecs,
 * and `load<Name>()` returning its maps, programs, globals and event streams, typed. From a
 * path, the file name and (unless `objectPath` or `embed` says otherwise) the object's
 * place next to the generated file are taken from it.
 */
export async function generate(source: string | Uint8Array, options: GenerateOptions = {}): Promise<string> {
  const data = typeof source === 'string' ? await readBytes(source) : bytes('the BPF object', source);
  const spec = await nativeAsync(() => addon.inspectObject(data), subject(source));
  return generateSkeleton(
    {
      programs: spec.programs,
      maps: spec.maps,
      globals: spec.globals,
      types: spec.types.filter((t) => t.id !== 0),
    },
    data,
    { ...(typeof source === 'string' ? { file: path.basename(source) } : {}), ...options },
  );
}
