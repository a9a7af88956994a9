// nodebpf gen OBJ: the TypeScript skeleton of a BPF object (see `generate()`).
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { generate, type Int64Mode } from 'nodebpf';

import { UsageError } from './usage.js';

export interface GenOptions {
  output: string | undefined;
  types: string[];
  events: string[];
  embed: boolean;
  int64: string | undefined;
  name: string | undefined;
}

const INT64: readonly Int64Mode[] = ['bigint', 'number-if-safe'];

export async function gen(objects: string[], o: GenOptions): Promise<void> {
  if (objects.length !== 1) throw new UsageError('gen takes one BPF object: nodebpf gen OBJ.bpf.o [--output FILE.ts]');
  const object = objects[0]!;
  if (o.int64 !== undefined && !(INT64 as readonly string[]).includes(o.int64)) throw new UsageError(`--int64 is one of ${INT64.join(', ')}, not '${o.int64}'`);
  const events: Record<string, string> = {};
  for (const e of o.events) {
    const eq = e.indexOf('=');
    if (eq <= 0) throw new UsageError(`--event takes MAP=TYPE ('events=struct event'), not '${e}'`);
    events[e.slice(0, eq)] = e.slice(eq + 1);
  }
  // The object as the generated file will find it: relative to the file's folder.
  const from = o.output ? path.dirname(path.resolve(o.output)) : process.cwd();
  const rel = path.relative(from, path.resolve(object)).split(path.sep).join('/');
  const source = await generate(object, {
    types: o.types,
    events,
    embed: o.embed,
    objectPath: rel.startsWith('.') ? rel : `./${rel}`,
    ...(o.int64 === undefined ? {} : { int64: o.int64 as Int64Mode }),
    ...(o.name === undefined ? {} : { name: o.name }),
  });
  if (o.output) writeFileSync(o.output, source);
  else process.stdout.write(source);
}
