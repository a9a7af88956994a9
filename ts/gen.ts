// The API behind `nodebpf gen`: a BPF object (a path, or its bytes) to the TypeScript of its
// skeleton. Reads the object only (open()): no kernel object is made, no privilege needed.
import path from 'node:path';

import { bytes } from './check.js';
import { generateSkeleton, type GenerateOptions } from './btf/generate.js';
import { open } from './open.js';
import { readBytes } from './object.js';

export type { GenerateOptions } from './btf/generate.js';

/**
 * The skeleton of a BPF object as TypeScript source: interfaces for its structs, codecs,
 * and `load<Name>()` returning its maps, programs, globals and event streams, typed. From a
 * path, the file name and (unless `objectPath` or `embed` says otherwise) the object's
 * place next to the generated file are taken from it.
 */
export async function generate(source: string | Uint8Array, options: GenerateOptions = {}): Promise<string> {
  const data = typeof source === 'string' ? await readBytes(source) : bytes('the BPF object', source);
  const o = await open(data);
  return generateSkeleton(
    {
      programs: o.programs,
      maps: o.maps,
      globals: o.globalSpecs,
      types: o.types.types.filter((t) => t.id !== 0),
    },
    data,
    { ...(typeof source === 'string' ? { file: path.basename(source) } : {}), ...options },
  );
}
