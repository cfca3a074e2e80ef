// Conversions between the engine's values (progress events, outcomes, info, usage records) and
// the API's messages, used by both the daemon and the client so that each field crosses intact.

import type { RecordType } from "../cache/metadata-snapshots.js";
import type { UsageRecord } from "../cache/usage-filter.js";
import type { BuildOutcome, EngineInfo } from "../engine/types.js";
import type { Digest } from "../oci/digest.js";
import type { Platform } from "../oci/platform.js";
import type { SnapshotId } from "../snapshot/types.js";
import type { ProgressEvent } from "../solver/progress.js";
import type {
  WireBuildOutcome,
  WireGcPolicy,
  WireInfo,
  WirePlatform,
  WireProgressEvent,
  WireUsageRecord,
} from "./engine-proto.js";

/** Copies only the keys whose value is defined: optional proto fields stay unset, not zero. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function platformToWire(p: Platform): WirePlatform {
  return defined({ os: p.os, architecture: p.architecture, variant: p.variant });
}

export function platformFromWire(p: WirePlatform): Platform {
  return p.variant
    ? { os: p.os, architecture: p.architecture, variant: p.variant }
    : { os: p.os, architecture: p.architecture };
}

export function progressToWire(e: ProgressEvent): WireProgressEvent {
  switch (e.type) {
    case "vertex":
      return {
        vertex: defined({
          vertex: e.vertex,
          name: e.name,
          inputs: [...e.inputs],
          started: e.started,
          completed: e.completed,
          cached: e.cached,
          error: e.error,
          progressGroup: e.progressGroup,
        }),
      };
    case "log":
      return { log: { vertex: e.vertex, stream: e.stream, data: e.data, timestamp: e.timestamp } };
    case "status":
      return {
        status: defined({
          vertex: e.vertex,
          id: e.id,
          name: e.name,
          current: e.current,
          total: e.total,
          started: e.started,
          completed: e.completed,
          timestamp: e.timestamp,
        }),
      };
    case "warning":
      return {
        warning: defined({
          vertex: e.vertex,
          message: e.message,
          detail: e.detail,
          url: e.url,
          location: e.location ? { file: e.location.file, line: e.location.line } : undefined,
        }),
      };
  }
}

export function progressFromWire(w: WireProgressEvent): ProgressEvent | undefined {
  if ("vertex" in w) {
    const v = w.vertex;
    return defined({
      type: "vertex" as const,
      vertex: v.vertex as Digest,
      name: v.name,
      inputs: (v.inputs ?? []) as Digest[],
      started: v.started,
      completed: v.completed,
      cached: v.cached,
      error: v.error,
      progressGroup: v.progressGroup,
    });
  }
  if ("log" in w) {
    return {
      type: "log",
      vertex: w.log.vertex as Digest,
      stream: w.log.stream === 2 ? 2 : 1,
      data: Buffer.from(w.log.data ?? []),
      timestamp: w.log.timestamp,
    };
  }
  if ("status" in w) {
    const s = w.status;
    return defined({
      type: "status" as const,
      vertex: s.vertex as Digest,
      id: s.id,
      name: s.name,
      current: s.current,
      total: s.total,
      started: s.started,
      completed: s.completed,
      timestamp: s.timestamp,
    });
  }
  if ("warning" in w) {
    const x = w.warning;
    return defined({
      type: "warning" as const,
      vertex: x.vertex as Digest | undefined,
      message: x.message,
      detail: x.detail,
      url: x.url,
      location: x.location ? { file: x.location.file, line: x.location.line } : undefined,
    });
  }
  return undefined;
}

export function outcomeToWire(o: BuildOutcome): WireBuildOutcome {
  return defined({
    warnings: [...o.warnings],
    metadataJson: Buffer.from(JSON.stringify(o.metadata ?? {})),
    imageId: o.imageId,
    report: o.report,
    failed: o.failed,
  });
}

export function outcomeFromWire(w: WireBuildOutcome): BuildOutcome {
  const metadata = w.metadataJson?.length
    ? (JSON.parse(w.metadataJson.toString("utf8")) as Record<string, unknown>)
    : {};
  return defined({
    warnings: w.warnings ?? [],
    metadata,
    imageId: w.imageId,
    report: w.report,
    failed: w.failed,
  });
}

function gcPolicyToWire(p: EngineInfo["gcPolicy"][number]): WireGcPolicy {
  return defined({
    all: p.all,
    filters: p.filters ? [...p.filters] : [],
    keepDurationMs: p.keepDurationMs,
    keepBytes: p.keepBytes,
  });
}

function gcPolicyFromWire(p: WireGcPolicy): EngineInfo["gcPolicy"][number] {
  return defined({
    all: p.all || undefined,
    filters: p.filters?.length ? p.filters : undefined,
    keepDurationMs: p.keepDurationMs,
    keepBytes: p.keepBytes,
  });
}

export function infoToWire(info: EngineInfo): WireInfo {
  return {
    version: info.version,
    commit: info.commit,
    nativePlatforms: info.nativePlatforms.map(platformToWire),
    emulatedPlatforms: info.emulatedPlatforms.map(platformToWire),
    snapshotter: info.snapshotter,
    gcPolicy: info.gcPolicy.map(gcPolicyToWire),
  };
}

export function infoFromWire(w: WireInfo): EngineInfo {
  return {
    version: w.version,
    commit: w.commit,
    nativePlatforms: (w.nativePlatforms ?? []).map(platformFromWire),
    emulatedPlatforms: (w.emulatedPlatforms ?? []).map(platformFromWire),
    snapshotter: w.snapshotter,
    gcPolicy: (w.gcPolicy ?? []).map(gcPolicyFromWire),
  };
}

export function usageToWire(r: UsageRecord): WireUsageRecord {
  return defined({
    id: r.id,
    parents: [...r.parents],
    recordType: r.recordType,
    description: r.description,
    size: r.size,
    createdAt: r.createdAt,
    lastUsedAt: r.lastUsedAt,
    usageCount: r.usageCount,
    mutable: r.mutable,
    inUse: r.inUse,
    shared: r.shared,
    cacheKeys: [...r.cacheKeys],
  });
}

export function usageFromWire(w: WireUsageRecord): UsageRecord {
  return defined({
    id: w.id as SnapshotId,
    parents: (w.parents ?? []) as SnapshotId[],
    recordType: w.recordType as RecordType,
    description: w.description,
    size: w.size,
    createdAt: w.createdAt,
    lastUsedAt: w.lastUsedAt,
    usageCount: w.usageCount,
    mutable: w.mutable,
    inUse: w.inUse,
    shared: w.shared,
    cacheKeys: w.cacheKeys ?? [],
  });
}
