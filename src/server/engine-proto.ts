// The engine API's gRPC definition, loaded from proto/kiln/engine/v1/*.proto, and the TypeScript
// shapes of its messages as @grpc/proto-loader presents them (camelCase fields, int64 as number,
// bytes as Buffer, oneofs named by `kind`).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const ENGINE_PROTO = "kiln/engine/v1/engine.proto";

/**
 * The proto/ directory shipped beside the code: two levels up from src/server/ when run from the
 * sources, one level up from dist/ when bundled.
 */
function findProtoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, ENGINE_PROTO))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(
        `cannot find ${ENGINE_PROTO} in a proto/ directory above ${fileURLToPath(import.meta.url)}: the Kiln installation is incomplete`,
      );
    }
    dir = parent;
  }
}

let loaded: grpc.ServiceClientConstructor | undefined;

/** The Engine service's client constructor (its `.service` is the server-side definition). */
export function engineServiceClient(): grpc.ServiceClientConstructor {
  if (!loaded) {
    const definition = protoLoader.loadSync(ENGINE_PROTO, {
      includeDirs: [findProtoRoot()],
      longs: Number,
      enums: String,
      bytes: Buffer,
      defaults: true,
      oneofs: true,
    });
    const root = grpc.loadPackageDefinition(definition) as unknown as {
      kiln: { engine: { v1: { Engine: grpc.ServiceClientConstructor } } };
    };
    loaded = root.kiln.engine.v1.Engine;
  }
  return loaded;
}

/** Limits both ends apply: build requests and file chunks stay far below this. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

// ---- Messages (as proto-loader decodes them; what we send may leave defaults out) ----

export interface WirePlatform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface WireGcPolicy {
  all?: boolean;
  filters?: string[];
  keepDurationMs?: number;
  keepBytes?: number;
}

export interface WireInfo {
  version: string;
  commit: string;
  nativePlatforms: WirePlatform[];
  emulatedPlatforms: WirePlatform[];
  snapshotter: string;
  gcPolicy: WireGcPolicy[];
}

export interface WireUsageRecord {
  id: string;
  parents: string[];
  recordType: string;
  description: string;
  size: number;
  createdAt: number;
  lastUsedAt?: number;
  usageCount: number;
  mutable: boolean;
  inUse: boolean;
  shared: boolean;
  cacheKeys: string[];
}

export interface WirePruneRequest {
  all?: boolean;
  filters?: string[];
  keepStorage?: number;
}

export interface WirePruneResponse {
  reclaimedBytes: number;
  removed: number;
}

export interface WireWorkerRecord {
  id: string;
  labels: Record<string, string>;
  platforms: WirePlatform[];
  gcPolicy: WireGcPolicy[];
}

export interface WireSessionInfo {
  id: string;
  sharedKeys: Record<string, string>;
  sshIds: string[];
  /** Whether the client answers credentialsRequest (false from clients that predate it). */
  registryCredentials?: boolean;
  /** Whether the client answers cacheDirRequest (false from clients that predate it). */
  cacheDirs?: boolean;
}

/** A registry login on the wire; its fields are proto3 `optional`, so an empty password stays a password. */
export interface WireRegistryCredentials {
  username?: string;
  secret?: string;
  identityToken?: string;
}

export interface WireFileStat {
  path: string;
  type: string;
  size: number;
  mtimeMs: number;
  mode: number;
  uid: number;
  gid: number;
  ino: number;
  link?: string;
}

export interface WireSyncRequest {
  call: number;
  name: string;
  include: string[];
  exclude: string[];
}

export interface WireSyncEntries {
  call: number;
  entries: WireFileStat[];
  done: boolean;
}

export interface WireSyncNeed {
  call: number;
  indexes: number[];
}

export interface WireSyncFileData {
  call: number;
  index: number;
  data: Buffer;
  eof: boolean;
}

export interface WireSessionReply {
  call: number;
  found?: boolean;
  data?: Buffer;
  error?: string;
  credentials?: WireRegistryCredentials | null;
  names?: string[];
}

export type WireCacheDirOp = "read" | "exists" | "write" | "list" | "remove";

export interface WireCacheDirRequest {
  call: number;
  dir: string;
  path: string;
  op: string;
}

export interface WireStreamData {
  stream: number;
  data?: Buffer;
  eof?: boolean;
  error?: string;
}

export interface WireStreamCredit {
  stream: number;
  bytes: number;
}

export interface WireStreamEnd {
  stream: number;
  error?: string;
}

export interface WireExportOpen {
  stream: number;
  output: number;
  kind: string;
  subdir?: string;
}

export type WireProgressEvent =
  | {
      kind?: "vertex";
      vertex: {
        vertex: string;
        name: string;
        inputs: string[];
        started?: number;
        completed?: number;
        cached?: boolean;
        error?: string;
        progressGroup?: string;
      };
    }
  | { kind?: "log"; log: { vertex: string; stream: number; data: Buffer; timestamp: number } }
  | {
      kind?: "status";
      status: {
        vertex: string;
        id: string;
        name?: string;
        current: number;
        total?: number;
        started?: number;
        completed?: number;
        timestamp: number;
      };
    }
  | {
      kind?: "warning";
      warning: {
        vertex?: string;
        message: string;
        detail?: string;
        url?: string;
        location?: { file: string; line: number };
      };
    };

export type WireBuildErrorKind = "BUILD_FAILED" | "CANCELLED" | "INTERNAL";

export interface WireBuildOutcome {
  warnings: string[];
  metadataJson: Buffer;
  imageId?: string;
  report?: string;
  failed?: string;
}

export type WireBuildResult =
  | { kind?: "outcome"; outcome: WireBuildOutcome }
  | {
      kind?: "error";
      error: { kind: WireBuildErrorKind | "KIND_UNSPECIFIED"; message: string; name?: string };
    };

export type BuildClientMessage =
  | { kind?: "start"; start: { requestJson: Buffer; session: WireSessionInfo } }
  | { kind?: "syncEntries"; syncEntries: WireSyncEntries }
  | { kind?: "syncData"; syncData: WireSyncFileData }
  | { kind?: "reply"; reply: WireSessionReply }
  | { kind?: "sshData"; sshData: WireStreamData }
  | { kind?: "exportCredit"; exportCredit: WireStreamCredit }
  | { kind?: "exportEnd"; exportEnd: WireStreamEnd }
  | { kind?: "cancel"; cancel: { reason: string } }
  | { kind?: "cacheDirData"; cacheDirData: WireStreamData };

export type BuildServerMessage =
  | { kind?: "progress"; progress: WireProgressEvent }
  | { kind?: "syncRequest"; syncRequest: WireSyncRequest }
  | { kind?: "syncNeed"; syncNeed: WireSyncNeed }
  | { kind?: "secretRequest"; secretRequest: { call: number; id: string } }
  | { kind?: "sshOpen"; sshOpen: { stream: number; id: string } }
  | { kind?: "sshData"; sshData: WireStreamData }
  | { kind?: "exportOpen"; exportOpen: WireExportOpen }
  | { kind?: "exportData"; exportData: WireStreamData }
  | { kind?: "callCancel"; callCancel: { call: number } }
  | { kind?: "result"; result: WireBuildResult }
  | { kind?: "credentialsRequest"; credentialsRequest: { call: number; host: string } }
  | { kind?: "cacheDirRequest"; cacheDirRequest: WireCacheDirRequest };

/** One side's way to put messages on a build stream; `send` returns false when the caller should wait for `drained`. */
export interface MessageSink<T> {
  send(message: T): boolean;
  drained(): Promise<void>;
}
