import { DECODERS } from './flags.js';

/** A mistake in the command line: printed with a hint, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const TRACE_HELP = `trace:
  tracepoints print their fields by name and type (from tracefs' format files): signed
  numbers signed, pointers in hex, strings read by the program (char * fields, up to 255
  bytes, "..." when cut), flags by name (open's O_*, mmap's PROT_*/MAP_*, AT_*), modes
  in octal:   syscalls:sys_enter_openat dfd=-100 filename="/etc/hostname" flags=O_RDONLY mode=0
  --args N            a function's first N arguments as 64-bit words
  --args TYPES        typed: 'str,int,u64,ptr' or named 'path:str,n:int' (up to 6): str
                      (read from user memory, else kernel memory), ptr, int uint long ulong
                      s8..s64 u8..u64 bool char, and flags or modes by name:
                        ${Object.keys(DECODERS).join(' ')}
                      a return spec with --args adds an entry probe for them; not read from
                      the target's DWARF or BTF: typed by --args only
  --filter EXPR       NAME==VALUE (!= < > <= >=) joined by &&, on fields (how.flags for a
                      member; args.NAME for a field named like these), pid, tid, comm, ret;
                      strings compare with == and != (globs * ?), flags by name or number:
                        --filter 'dfd==-100 && flags==O_RDONLY|O_CLOEXEC && comm==cat*'
                      pid==N is applied in the kernel (as --pid); the rest here, in nodebpf,
                      on each record the kernel sends (filtered-out hits still cost their record)`;
