/**
 * Stable error codes; see README "Errors". `test/unit/boundary.test.ts` holds this union
 * to the codes the Rust core declares (`errorCodes()` of the addon).
 */
export type BpfErrorCode =
  | 'EPERM'
  | 'ENOENT'
  | 'EINVAL'
  | 'RANGE'
  | 'VERIFIER'
  | 'BAD_OBJECT'
  | 'UNSUPPORTED'
  | 'CLOSED'
  | 'BUSY'
  | 'STALE'
  | 'INCOMPATIBLE'
  | 'INTERNAL'
  | 'EIO';

/** What an error is about, where known. */
export interface BpfErrorDetails {
  /** The OS errno, where the failure came from a syscall. */
  errno?: number;
  /** For `VERIFIER`: the whole verifier log (the message holds its last lines). */
  verifierLog?: string;
  /** The call that failed: 'load', 'attachUprobe', 'lookup', 'ringbuf', ... */
  operation?: string;
  program?: string;
  map?: string;
  symbol?: string;
  path?: string;
  cause?: unknown;
}

/**
 * Marks a BpfError across copies of this package in one process: `import` loads
 * dist/index.js and `require` dist/index.cjs, each with its own class.
 */
const BRAND = Symbol.for('nodebpf.BpfError');

export class BpfError extends Error {
  /** True for a BpfError of either entry (ESM or CommonJS), so `instanceof` holds across them. */
  static [Symbol.hasInstance](v: unknown): v is BpfError {
    return typeof v === 'object' && v !== null && (v as { [BRAND]?: unknown })[BRAND] === true;
  }

  readonly code: BpfErrorCode;
  readonly errno: number | undefined;
  readonly verifierLog: string | undefined;
  readonly operation: string | undefined;
  readonly program: string | undefined;
  readonly map: string | undefined;
  readonly symbol: string | undefined;
  readonly path: string | undefined;

  constructor(code: BpfErrorCode, message: string, details: BpfErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'BpfError';
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    this.errno = details.errno;
    this.verifierLog = details.verifierLog;
    this.operation = details.operation;
    this.program = details.program;
    this.map = details.map;
    this.symbol = details.symbol;
    this.path = details.path;
  }
}

/** The property the addon marks its errors with (the code). */
const MARKER = 'nodebpfCode';

/** The properties of `BpfErrorDetails` the addon sets on its errors. */
const DETAILS = new Set(['errno', 'verifierLog', 'operation', 'program', 'map', 'symbol', 'path']);

/** napi-rs's codes for an argument of the wrong JS type. */
const NAPI_ARG_CODES = new Set(['InvalidArg', 'ObjectExpected', 'StringExpected', 'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected']);

/** The addon's errors: the details as properties, the code under the marker. */
interface NativeError extends Error, Omit<BpfErrorDetails, 'cause'> {
  [MARKER]?: BpfErrorCode;
  /** napi-rs's own status code, for errors that are not nodebpf's. */
  code?: string;
}

/** Turns an error thrown by the addon into a `BpfError`; other errors pass through. */
export function toBpfError(e: unknown, details: BpfErrorDetails = {}): unknown {
  if (!(e instanceof Error)) return e;
  const n = e as NativeError;
  const code = n[MARKER];
  if (code !== undefined) {
    // What the addon knew wins over what the facade knew.
    const known = Object.fromEntries(Object.entries(n).filter(([k, v]) => DETAILS.has(k) && v !== undefined));
    return new BpfError(code, n.message, { ...details, ...known, cause: n.cause });
  }
  // napi-rs refused an argument's JS type: the facade checks types first, so this names
  // what reached the addon anyway.
  if (n.code !== undefined && NAPI_ARG_CODES.has(n.code)) {
    const what = details.operation ? `${details.operation}: ` : '';
    return new BpfError('EINVAL', `${what}invalid argument: ${n.message}`, { ...details, cause: e });
  }
  return e;
}

/** Calls into the addon, converting its errors. */
export function native<T>(f: () => T, details?: BpfErrorDetails): T {
  try {
    return f();
  } catch (e) {
    throw toBpfError(e, details);
  }
}

export async function nativeAsync<T>(f: () => Promise<T>, details?: BpfErrorDetails): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw toBpfError(e, details);
  }
}
