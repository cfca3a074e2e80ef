// The executor contract: run one process in a container built from snapshots and mounts.
import type { NetworkMode, SecurityMode } from "../llb/ops.js";
import type { Platform } from "../oci/platform.js";
import type { MountSpec } from "../snapshot/types.js";

export interface ContainerMount {
  readonly dest: string;
  /** Kernel mounts to stack at dest (one bind/overlay/tmpfs mount, usually). */
  readonly mounts: readonly MountSpec[];
  readonly readonly: boolean;
}

export interface ProcessSpec {
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  /** `user`, `uid`, `user:group`, `uid:gid`, resolved against the rootfs's /etc/passwd and /etc/group. */
  readonly user: string;
  readonly hostname?: string;
  readonly extraHosts?: readonly { readonly host: string; readonly ip: string }[];
  readonly ulimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly shmSize?: number;
  readonly cgroupParent?: string;
}

export interface RunRequest {
  /** Mounts of the root filesystem, read-write. */
  readonly rootfs: readonly MountSpec[];
  readonly mounts: readonly ContainerMount[];
  readonly process: ProcessSpec;
  readonly network: NetworkMode;
  readonly security: SecurityMode;
  readonly platform: Platform;
  /** Called with output as it arrives; fd 1 = stdout, 2 = stderr. */
  readonly onOutput?: (fd: 1 | 2, data: Buffer) => void;
  readonly signal?: AbortSignal;
}

export interface RunResult {
  readonly exitCode: number;
}

export interface Executor {
  /** Runs the process to completion; rejects with an AbortError when `signal` fires (process killed). */
  run(req: RunRequest): Promise<RunResult>;
}
