export { BpfError, type BpfErrorCode, type BpfErrorDetails } from './errors.js';
export { load, loadSync, BpfObject, type LoadOptions, type GlobalValue, type MapConfig, type ProgramConfig } from './object.js';
export { open, OpenObject, OpenProgram, OpenMap } from './open.js';
export type { GlobalSpec } from './binding.js';
export { BpfMap, createMap, pidfdOpen, MapType, sumPerCpu, maxPerCpu, type MapCodecs, type MapHandle, type CreateMapOptions } from './map.js';
export { log2Histogram, linearHistogram, renderHistogram, bucketLabel, pow2Label, type Histogram, type HistogramBucket, type HistogramSource, type Log2HistogramOptions, type LinearHistogramOptions, type RenderHistogramOptions } from './hist.js';
export { Program } from './program.js';
export type { UprobeOptions, KprobeOptions, KprobeMultiOptions, UprobeMultiOptions, UsdtOptions, TracingMultiOptions, Progress, PerfEventOptions, PerfEventName, FreplaceTarget, TestRunOptions, TestRunResult } from './program.js';
export { Link, MultiLink, type ReattachEvent, type MultiLinkMechanism, type KprobeMultiMechanism, type UprobeMultiMechanism, type TracingMultiMechanism } from './link.js';
export { progTypeName, attachTypeName, mapTypeName, type ProgTypeName, type AttachTypeName, type MapTypeName, type LinkOf, type SectionKind } from './types.js';
export { RingBuffer, PerfBuffer, Batch, type EventRecord, type PerfBufferOptions, type IterateOptions, type RingBufferOptions, type RingBufferStats, type ReadonlyDataView } from './ringbuf.js';
export type { Codec, CodecName, CodecSpec } from './codec.js';
export { TypeTable, compileCodec, btfRuntime, cName, type TypeCodec, type TypeOptions, type RecordDecoder, type Layout, type Field, type EnumValue, type Bitfield, type Int64Mode, type BtfRuntime } from './btf/index.js';
export type { BtfType, BtfMember, BtfEnumValue } from './binding.js';
export { generate, type GenerateOptions } from './gen.js';
export { loadSkeleton, TypedEvents, type Skeleton, type SkeletonLoadOptions, type SkeletonShape } from './skeleton.js';
export type { MapValue, MapValueInput, PerCpuOf } from './map.js';
export { offcpu, profile, profileIntervals, Profile, type OffCpuOptions, type Frame, type ProfileOptions, type ProfileSample, type ProfileTotals, type SpeedscopeFile } from './profile/index.js';
export type { Features, LinkInfo, ProgramDesc, MapDesc, MultiTarget, MultiSkipped, MultiStats } from './native.js';

import { addon, type Features } from './native.js';
import { nativeAsync } from './errors.js';

/**
 * What this kernel supports, probed once per process by trying it. Rejects with `EPERM`,
 * naming the capabilities, in a process that lacks them (every probe would fail).
 */
export function features(): Promise<Features> {
  return nativeAsync(() => addon.features(), { operation: 'features' });
}

/** A feature of `Features`: what it is and what kernel has it. */
export interface FeatureRow {
  name: Exclude<keyof Features, 'kernel'>;
  what: string;
  needs: string;
}

/** Every feature `features()` reports, in order: what it is and what kernel has it. */
export function featureTable(): FeatureRow[] {
  return addon.featureTable() as FeatureRow[];
}

/** Capabilities nodebpf needs that this process lacks (empty when it has them all). */
export function missingCapabilities(): string[] {
  return addon.missingCapabilities();
}
