// The engine's service interface: what the daemon API serves and the embedded builder calls.

import type { UsageRecord } from "../cache/usage-filter.js";
import type { BuildRequest } from "../client/build-request.js";
import type { Platform } from "../oci/platform.js";
import type { BuildSession } from "../session/types.js";
import type { ProgressSink } from "../solver/progress.js";

export interface BuildOutcome {
  /** Build warnings (checks, no-output notices). */
  readonly warnings: readonly string[];
  /** Buildx's metadata-file keys (containerimage.digest, containerimage.config.digest, …). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The config digest (what `--iidfile` and `-q` print), when an image was produced. */
  readonly imageId?: string;
  /** Text to print for `--call outline|targets|check`. */
  readonly report?: string;
  /** Set when `--call=check` found errors: the build is failed with this message. */
  readonly failed?: string;
}

export interface EngineInfo {
  readonly version: string;
  readonly commit: string;
  readonly nativePlatforms: readonly Platform[];
  readonly emulatedPlatforms: readonly Platform[];
  readonly snapshotter: string;
  readonly gcPolicy: readonly {
    readonly all?: boolean;
    readonly filters?: readonly string[];
    readonly keepDurationMs?: number;
    readonly keepBytes?: number;
  }[];
}

export interface PruneOptions {
  readonly all?: boolean;
  readonly filters?: readonly string[];
  readonly keepStorage?: number;
}

export interface BuildEngine {
  build(
    req: BuildRequest,
    session: BuildSession,
    opts: { onProgress?: ProgressSink; signal?: AbortSignal },
  ): Promise<BuildOutcome>;
  info(): Promise<EngineInfo>;
  diskUsage(filters?: readonly string[]): Promise<UsageRecord[]>;
  prune(opts: PruneOptions): Promise<{ reclaimedBytes: number; removed: number }>;
  close(): Promise<void>;
}
