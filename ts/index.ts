export { BpfError, type BpfErrorCode } from './errors.js';
export { load, loadSync, BpfObject, BpfMap, Program, Link, MultiLink } from './object.js';
export type {
  LoadOptions,
  GlobalValue,
  UprobeOptions,
  KprobeOptions,
  MapCodecs,
  KprobeMultiOptions,
  UprobeMultiOptions,
  TracingMultiOptions,
  ReattachEvent,
  Progress,
} from './object.js';
export { RingBuffer, Batch, type IterateOptions } from './ringbuf.js';
export type { Codec, CodecName, CodecSpec } from './codec.js';
export type { Features, LinkInfo, ProgramDesc, MapDesc, MultiTarget, MultiSkipped, MultiStats } from './native.js';

import { addon, type Features } from './native.js';
import { nativeAsync } from './errors.js';

/** What this kernel supports, probed once per process by trying it. */
export function features(): Promise<Features> {
  return nativeAsync(() => addon.features());
}

/** Capabilities nodebpf needs that this process lacks (empty when it has them all). */
export function missingCapabilities(): string[] {
  return addon.missingCapabilities();
}
