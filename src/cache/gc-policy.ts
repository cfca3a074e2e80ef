// Garbage-collection policy: BuildKit's rule list (filters, keep duration, reserved / max-used /
// min-free space), its defaults, and how a rule's space limits become "keep this many bytes".
import { statfs } from "node:fs/promises";

/** An amount of disk: absolute bytes, or a percentage of the disk holding the state. */
export type DiskSpace = { readonly bytes: number } | { readonly percentage: number };

export interface GcRule {
  /** Also collect internal and frontend records and shared ones. */
  readonly all?: boolean;
  /** Prune filters (`type==source.local`, ...); a record must match one of them. */
  readonly filters?: readonly string[];
  /** Records used more recently than this are kept. */
  readonly keepDurationMs?: number;
  /** Usage below this is never reclaimed. */
  readonly reservedSpace?: DiskSpace;
  /** Usage above this is reclaimed. */
  readonly maxUsedSpace?: DiskSpace;
  /** Reclaim until the disk has this much free (but never below `reservedSpace`). */
  readonly minFreeSpace?: DiskSpace;
}

export interface DiskStat {
  readonly totalBytes: number;
  readonly freeBytes: number;
}

export interface GcSpaceConfig {
  readonly reservedSpace?: DiskSpace;
  readonly maxUsedSpace?: DiskSpace;
  readonly minFreeSpace?: DiskSpace;
}

const GB = 1e9;
/** Used for percentages when the disk's size cannot be read. */
const FALLBACK_CAP_BYTES = 2 * GB;

export async function diskStatOf(dir: string): Promise<DiskStat> {
  const s = await statfs(dir);
  return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}

/** BuildKit's default space limits: reserve 10 % (≤ 10 GB), keep 20 % free, use at most 80 % (≤ 100 GB). */
export function defaultGcSpace(disk: DiskStat): Required<GcSpaceConfig> {
  const reserved = diskSpaceBytes({ percentage: 10 }, disk);
  const maxUsed = diskSpaceBytes({ percentage: 80 }, disk);
  return {
    reservedSpace: reserved > 10 * GB ? { bytes: 10 * GB } : { percentage: 10 },
    minFreeSpace: { percentage: 20 },
    maxUsedSpace: maxUsed > 100 * GB ? { bytes: 100 * GB } : { percentage: 80 },
  };
}

/**
 * BuildKit's default rules, most specific first: easily re-made data (local sources, cache mounts,
 * git checkouts) unused for 48 h while it takes over 512 MB; anything unused for 60 days; unshared
 * data down to the cap; then everything down to the cap.
 */
export function defaultGcPolicy(disk: DiskStat, space?: GcSpaceConfig): GcRule[] {
  const cap =
    space && (space.reservedSpace || space.maxUsedSpace || space.minFreeSpace) ? space : defaultGcSpace(disk);
  const limits = {
    ...(cap.reservedSpace ? { reservedSpace: cap.reservedSpace } : {}),
    ...(cap.maxUsedSpace ? { maxUsedSpace: cap.maxUsedSpace } : {}),
    ...(cap.minFreeSpace ? { minFreeSpace: cap.minFreeSpace } : {}),
  };
  return [
    {
      filters: ["type==source.local", "type==exec.cachemount", "type==source.git.checkout"],
      keepDurationMs: 48 * 3600_000,
      maxUsedSpace: { bytes: 512e6 },
    },
    { keepDurationMs: 60 * 24 * 3600_000, ...limits },
    { ...limits },
    { all: true, ...limits },
  ];
}

export function diskSpaceBytes(space: DiskSpace | undefined, disk: DiskStat): number {
  if (!space) return 0;
  if ("bytes" in space) return space.bytes;
  if (space.percentage === 0) return 0;
  if (disk.totalBytes === 0) return FALLBACK_CAP_BYTES;
  return Math.floor((disk.totalBytes * space.percentage) / 100);
}

export interface SpaceLimits {
  readonly reservedSpace?: number;
  readonly maxUsedSpace?: number;
  readonly minFreeSpace?: number;
}

/**
 * How many bytes of cache to keep given current usage and free space, as BuildKit computes it:
 * undefined means "no size cap" (collect every match). Otherwise start from max-used, lower it to
 * make min-free space available, and never go below reserved.
 */
export function keepBytesFor(totalBytes: number, freeBytes: number, limits: SpaceLimits): number | undefined {
  const reserved = limits.reservedSpace ?? 0;
  const maxUsed = limits.maxUsedSpace ?? 0;
  const minFree = limits.minFreeSpace ?? 0;
  if (reserved === 0 && maxUsed === 0 && minFree === 0) return undefined;
  let keep = maxUsed;
  const shortfall = minFree - freeBytes;
  if (shortfall > 0) {
    keep = keep === 0 ? totalBytes - shortfall : Math.min(keep, totalBytes - shortfall);
  } else if (minFree !== 0 && keep === 0) {
    // Only min-free is set and there is enough free space: nothing to do.
    keep = totalBytes;
  }
  return Math.max(keep, reserved, 0);
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3600_000,
};

/** Parses Go-style durations (`48h`, `2h30m`, `90s`, `500ms`); a bare number is seconds. */
export function parseDurationMs(text: string): number {
  const s = text.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (s === "" || matched !== s.length) {
    throw new Error(
      `invalid duration ${JSON.stringify(text)}: expected e.g. 24h, 2h30m, 90s or a number of seconds`,
    );
  }
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/**
 * Parses a disk space as Docker's CLI does (`512mb`, `10GB`, `2GiB`; units are binary, case is
 * ignored) or a percentage of the disk (`10%`).
 */
export function parseDiskSpace(text: string): DiskSpace {
  const s = text.trim();
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(s);
  if (pct) return { percentage: Number(pct[1]) };
  return { bytes: parseBytes(s) };
}

export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(text.trim());
  if (!m) throw new Error(`invalid size ${JSON.stringify(text)}: expected e.g. 512mb, 10GB, 2GiB or 20%`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}
