// `nodebpf gen`: TypeScript from a BPF object, as `bpftool gen skeleton` and cilium's
// bpf2go do for C and Go. One file: an interface per struct the maps, globals, events and
// named types use; their decoders and encoders as straight-line functions at fixed offsets;
// and a loader returning the object's maps, programs, globals and event streams, typed.
import { createHash } from 'node:crypto';

import type { BtfType, GlobalSpec } from '../binding.js';
import { BpfError } from '../errors.js';
import { MapType } from '../map.js';
import { Emitter, pascal, prop, type Int64Mode } from './compile.js';
import { cName, TypeTable, type Layout } from './layout.js';

/** What generation reads of an object: what `open()` gives. */
export interface GenerateInput {
  programs: readonly { name: string; section: string }[];
  maps: readonly { name: string; mapType: number; btfKeyTypeId: number; btfValueTypeId: number }[];
  globals: readonly GlobalSpec[];
  types: readonly BtfType[];
}

export interface GenerateOptions {
  /** The object's file name, for the header and messages (default `'object.bpf.o'`). */
  file?: string;
  /** The skeleton's name: `loadName()`, `Name` (default: the file's name without `.bpf.o`). */
  name?: string;
  /** How the generated file finds the object at run time, relative to itself (default `./<file>`). */
  objectPath?: string;
  /** The object's bytes in the file (base64), for bundles and CommonJS: no file to find at run time. */
  embed?: boolean;
  /** Types to generate beyond those the maps, globals and events use (`'struct event'`, `'event_t'`). */
  types?: readonly string[];
  /**
   * The record type of event maps (ring and perf buffers), by map name. By default an event
   * map's records are `struct event` when the object has one (libbpf-tools' convention),
   * else `EventRecord`s.
   */
  events?: Readonly<Record<string, string>>;
  /** 64-bit integers of maps and events: bigints (default) or numbers while exact. */
  int64?: Int64Mode;
  /** Where generated code imports nodebpf from (default `'nodebpf'`). */
  importFrom?: string;
}

const PER_CPU = new Set<number>([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, 21 /* PERCPU_CGROUP_STORAGE */]);
const EVENT_MAPS = new Set<number>([MapType.RINGBUF, MapType.PERF_EVENT_ARRAY]);
/** The names the generated file imports or declares, which no interface may take. */
const RESERVED = ['BpfMap', 'Program', 'ReadonlyDataView', 'Skeleton', 'SkeletonLoadOptions', 'TypeCodec', 'TypedEvents', 'EventRecord', 'RingBuffer'];
const EVENT_TYPE = 'struct event';

const camel = (s: string) => {
  const p = pascal(s);
  return p.charAt(0).toLowerCase() + p.slice(1);
};

/** The TypeScript text of a skeleton for the object `data` whose spec is `input`. */
export function generateSkeleton(input: GenerateInput, data: Uint8Array, options: GenerateOptions = {}): string {
  const file = options.file ?? 'object.bpf.o';
  const base = options.name ?? file.replace(/^.*\//, '').replace(/(\.bpf)?\.o$/, '');
  const Name = pascal(base);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const table = new TypeTable(input.types);
  const em = new Emitter({ ts: true, int64: options.int64 ?? 'bigint' });
  // Globals read through `obj.globals`, whose 64-bit integers are bigints.
  const globalsEm = new Emitter({ ts: true, int64: 'bigint' });
  for (const n of [...RESERVED, Name, `${Name}Maps`, `${Name}Programs`, `${Name}Globals`, `${Name}Events`]) {
    em.reserve(n);
    globalsEm.reserve(n);
  }

  const typeId = (name: string, what: string) => {
    const id = table.find(name);
    if (id === undefined) throw new BpfError('ENOENT', `${what}: the object's BTF has no type '${name}'`, { symbol: name });
    return id;
  };

  // One codec constant per type: named after a struct, else after its layout.
  const codecs = new Map<number, { name: string; ts: string; layout: Layout; type: string }>();
  const codecNames = new Set<string>();
  const codecOf = (id: number) => {
    const known = codecs.get(id);
    if (known) return known;
    const layout = table.layout(id);
    const ts = em.tsType(layout);
    let name = `${camel(layout.kind === 'struct' || layout.kind === 'union' ? ts : cName(table, id).replace(/[^\w]+/g, '_'))}Codec`;
    for (let i = 2; codecNames.has(name); i++) name = `${name.replace(/\d*Codec$/, '')}${i}Codec`;
    codecNames.add(name);
    const c = { name, ts, layout, type: cName(table, id) };
    codecs.set(id, c);
    return c;
  };

  for (const t of options.types ?? []) codecOf(typeId(t, '--type'));

  // Maps: typed keys and values where BTF names them.
  const mapLines: string[] = [];
  const mapShape: string[] = [];
  const eventLines: string[] = [];
  const eventShape: string[] = [];
  const defaultEvent = table.find(EVENT_TYPE);
  for (const m of input.maps) {
    // Data sections are the globals, typed below.
    if (input.globals.some((g) => g.section === m.name)) continue;
    if (EVENT_MAPS.has(m.mapType)) {
      const named = options.events?.[m.name];
      const id = named !== undefined ? typeId(named, `--event ${m.name}`) : defaultEvent;
      if (id === undefined) {
        eventLines.push(`  ${prop(m.name)}: RingBuffer;`);
        eventShape.push(`    ${prop(m.name)}: undefined,`);
      } else {
        const c = codecOf(id);
        eventLines.push(`  /** Records of \`${cName(table, id)}\`. */\n  ${prop(m.name)}: TypedEvents<${c.ts}>;`);
        eventShape.push(`    ${prop(m.name)}: ${c.name}.record,`);
      }
      continue;
    }
    const key = m.btfKeyTypeId ? codecOf(m.btfKeyTypeId) : undefined;
    const value = m.btfValueTypeId ? codecOf(m.btfValueTypeId) : undefined;
    const perCpu = PER_CPU.has(m.mapType);
    const doc = `${m.name}: ${key ? cName(table, m.btfKeyTypeId) : 'bytes'} → ${value ? cName(table, m.btfValueTypeId) : 'bytes'}${perCpu ? ', one value per possible CPU' : ''}`;
    mapLines.push(`  /** ${doc} */\n  ${prop(m.name)}: BpfMap<${key?.ts ?? 'Uint8Array'}, ${value?.ts ?? 'Uint8Array'}, ${perCpu}>;`);
    mapShape.push(`    ${prop(m.name)}: { ${[key ? `key: ${key.name}` : '', value ? `value: ${value.name}` : '', `perCpu: ${perCpu}`].filter(Boolean).join(', ')} },`);
  }

  const programLines = input.programs.map((p) => `  ${prop(p.name)}: Program<${JSON.stringify(p.section)}>;`);
  const programShape = input.programs.map((p) => `    ${prop(p.name)}: ${JSON.stringify(p.section)},`);

  const globalLines = input.globals.map((g) => {
    const type = g.typeId && table.get(g.typeId) ? globalsEm.tsType(table.layout(g.typeId)) : 'Uint8Array';
    const readonly = g.section === '.rodata' || g.section.startsWith('.rodata.') ? '/** In .rodata: set before load (`globals` option); read-only once loaded. */\n  ' : '';
    return `  ${readonly}${prop(g.name)}: ${type};`;
  });

  // The functions, then the codec constants that use them.
  const codecConsts = [...codecs.values()].map(
    (c) => `/** \`${c.type}\`, ${c.layout.size} bytes. */\nexport const ${c.name}: TypeCodec<${c.ts}> = rt.codec(${em.decoder(c.layout)}, ${em.encoder(c.layout)}, ${c.layout.size}, ${JSON.stringify(c.type)});`,
  );

  const enums = new Map([...globalsEm.enums, ...em.enums]);
  const enumConsts = [...enums.values()].map((e) => {
    const lit = (v: bigint) => (e.size === 8 ? `${v}n` : `${v}`);
    return `/** \`enum ${e.name}\`. */\nexport const ${pascal(e.name)} = {\n${e.values.map((v) => `  ${prop(v.name)}: ${lit(v.value)},`).join('\n')}\n} as const;`;
  });

  const interfaces = [...new Set([...em.interfaces, ...globalsEm.interfaces])];
  const from = options.importFrom ?? 'nodebpf';
  const source = options.embed ? `rt.base64(${JSON.stringify(Buffer.from(data).toString('base64'))})` : `new URL(${JSON.stringify(options.objectPath ?? `./${file.replace(/^.*\//, '')}`)}, import.meta.url)`;

  return `${[
    [
      `// Generated by \`nodebpf gen\` from ${file}, sha256 ${sha256}.`,
      '// Do not edit: generate it again when the object changes (loading another object is an',
      '// INCOMPATIBLE error, since the codecs below hold its offsets).',
    ].join('\n'),
    `import { btfRuntime as rt, loadSkeleton, type BpfMap, type Program, type ReadonlyDataView, type RingBuffer, type Skeleton, type SkeletonLoadOptions, type TypeCodec, type TypedEvents } from ${JSON.stringify(from)};`,
    ...interfaces,
    ...enumConsts,
    em.source(),
    globalsEm.source(),
    ...codecConsts,
    `export interface ${Name}Maps {\n${mapLines.join('\n')}\n}`,
    `export interface ${Name}Programs {\n${programLines.join('\n')}\n}`,
    `export interface ${Name}Globals {\n${globalLines.join('\n')}\n}`,
    `export interface ${Name}Events {\n${eventLines.join('\n')}\n}`,
    `/** ${file}, loaded. */\nexport type ${Name} = Skeleton<${Name}Maps, ${Name}Programs, ${Name}Globals, ${Name}Events>;`,
    `const SHAPE = {\n  file: ${JSON.stringify(file.replace(/^.*\//, ''))},\n  sha256: ${JSON.stringify(sha256)},\n  programs: {\n${programShape.join('\n')}\n  },\n  maps: {\n${mapShape.join('\n')}\n  },\n  events: {\n${eventShape.join('\n')}\n  },\n};`,
    `/** Loads ${file} (the object this file was generated from). */\nexport function load${Name}(options: SkeletonLoadOptions<${Name}Globals> = {}): Promise<${Name}> {\n  return loadSkeleton(${source}, SHAPE, options);\n}`,
  ]
    .filter(Boolean)
    .join('\n\n')}\n`;
}
