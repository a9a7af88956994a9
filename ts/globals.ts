// `obj.globals.x`: a BPF object's .rodata/.data/.bss variables as typed properties. Before
// load they configure the initial values (libbpf skeletons' `skel->rodata->x = …`); after
// load they read and write the live maps, through the memory the kernel maps for them
// (`BPF_F_MMAPABLE`), so reading a counter the program increments is one property read.
import type { GlobalSpec } from './binding.js';
import { compileCodec, type TypeCodec, type TypeCodecs } from './btf/index.js';
import { BpfError } from './errors.js';

/** How a variable's bytes are read and written: the configuration, or the live map. */
export interface GlobalStore {
  read(g: GlobalSpec, codec: TypeCodec<unknown>): unknown;
  write(g: GlobalSpec, bytes: Uint8Array): void;
}

/** `.rodata` and `.rodata.*` are frozen once loaded: the program reads them as constants. */
export const isReadOnlySection = (section: string) => section === '.rodata' || section.startsWith('.rodata.');

/** A variable without BTF: its bytes. */
function bytesCodec(g: GlobalSpec): TypeCodec<unknown> {
  return compileCodec({ kind: 'bytes', size: g.size }, `${g.name} (${g.size} bytes)`);
}

/** The codec of a global: its BTF type's when the object has one, else its bytes. */
export function globalCodec(g: GlobalSpec, codecs: TypeCodecs | undefined): TypeCodec<unknown> {
  if (!codecs || !g.typeId) return bytesCodec(g);
  const c = codecs.byId(g.typeId);
  // A variable is its type's size; an odd BTF that says otherwise is read as bytes.
  return c.size === g.size ? c : bytesCodec(g);
}

/**
 * An object with one accessor per variable. Unknown names read as `undefined` and cannot
 * be set (the object is sealed), so a typo is a TypeError in strict mode rather than a
 * silent no-op.
 */
export function globalsObject(specs: readonly GlobalSpec[], codecs: TypeCodecs | undefined, store: GlobalStore): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const g of specs) {
    let codec: TypeCodec<unknown> | undefined;
    const codecOf = () => (codec ??= globalCodec(g, codecs));
    Object.defineProperty(out, g.name, {
      enumerable: true,
      get: () => store.read(g, codecOf()),
      set: (value: unknown) => {
        let bytes: Uint8Array;
        try {
          bytes = codecOf().encode(value, `global '${g.name}'`);
        } catch (e) {
          throw e instanceof BpfError ? new BpfError(e.code, e.message, { symbol: g.name, cause: e }) : e;
        }
        store.write(g, bytes);
      },
    });
  }
  return Object.seal(out);
}

/** The error for writing a frozen variable after load. */
export function frozen(g: GlobalSpec): BpfError {
  return new BpfError('EPERM', `global '${g.name}' is in ${g.section}, which is frozen once loaded: set it before load (open(…).globals.${g.name} = …, or load(…, { globals }))`, { symbol: g.name });
}
