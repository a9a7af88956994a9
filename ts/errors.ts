/** Stable error codes; see README "Errors". */
export type BpfErrorCode =
  | 'EPERM'
  | 'ENOENT'
  | 'EINVAL'
  | 'VERIFIER'
  | 'BAD_OBJECT'
  | 'UNSUPPORTED'
  | 'CLOSED'
  | 'EIO';

export class BpfError extends Error {
  readonly code: BpfErrorCode;
  /** The OS errno, where the failure came from a syscall. */
  readonly errno: number | undefined;
  /** For `VERIFIER`: the whole verifier log (the message holds its last lines). */
  readonly verifierLog: string | undefined;

  constructor(code: BpfErrorCode, message: string, errno?: number, verifierLog?: string) {
    super(message);
    this.name = 'BpfError';
    this.code = code;
    this.errno = errno;
    this.verifierLog = verifierLog;
  }
}

const PREFIX = 'nodebpf:';

interface NativeErrorPayload {
  code: BpfErrorCode;
  errno: number | null;
  message: string;
  verifierLog: string | null;
}

/** Turns an error thrown by the addon into a `BpfError`; other errors pass through. */
export function toBpfError(e: unknown): unknown {
  if (e instanceof Error && e.message.startsWith(PREFIX)) {
    const p = JSON.parse(e.message.slice(PREFIX.length)) as NativeErrorPayload;
    return new BpfError(p.code, p.message, p.errno ?? undefined, p.verifierLog ?? undefined);
  }
  return e;
}

/** Calls into the addon, converting its errors. */
export function native<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw toBpfError(e);
  }
}

export async function nativeAsync<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw toBpfError(e);
  }
}
