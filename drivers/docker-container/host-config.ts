// The engine container's host settings. The engine needs what a privileged container has (all
// capabilities, no seccomp/AppArmor confinement, writable cgroups) to run build steps with runc.
// Some Docker hosts cannot start privileged containers at all — when the daemon itself runs with
// a reduced capability bounding set (inside another container), runc fails with "unable to apply
// caps". There the engine gets the same powers spelled out: every capability the host grants,
// unconfined profiles, and the host's cgroup tree mounted writable.
import { readFileSync } from "node:fs";
import type Docker from "dockerode";
import { CAPABILITIES, capabilitiesIn } from "../../src/worker/oci/capabilities.js";
import type { ContainerSettings } from "./options.js";

/** Whether a container start failed because the host cannot grant a privileged container's capabilities. */
export function isPrivilegeRefusal(err: unknown): boolean {
  return /unable to apply caps|apply caps: operation not permitted/i.test((err as Error)?.message ?? "");
}

/** Capabilities missing from a bounding set given as /proc/PID/status prints it (hex). */
export function missingCapabilities(capBndHex: string): string[] {
  const granted = new Set(capabilitiesIn(BigInt(`0x${capBndHex.trim()}`)));
  return CAPABILITIES.filter((c) => !granted.has(c));
}

/** This process's capability bounding set: the best guess for a Docker daemon on this machine. */
export function hostBoundingSet(statusFile = "/proc/self/status"): string {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync(statusFile, "utf8"));
  if (!m) throw new Error(`cannot read the capability bounding set from ${statusFile}`);
  return m[1]!;
}

export type PrivilegeMode = "privileged" | "capabilities";

export function engineHostConfig(
  s: ContainerSettings,
  mounts: Docker.MountConfig,
  mode: PrivilegeMode,
  /** `host-dir:container-dir` binds; the daemon creates a missing host dir (unlike Mounts). */
  binds: readonly string[] = [],
): Docker.HostConfig {
  const common: Docker.HostConfig = {
    Init: true,
    RestartPolicy: s.restartPolicy,
    Mounts: mounts,
    NetworkMode: s.networkMode,
    CgroupParent: s.cgroupParent,
    Memory: s.memory,
    MemorySwap: s.memorySwap,
    CpuQuota: s.cpuQuota,
    CpuPeriod: s.cpuPeriod,
    CpuShares: s.cpuShares,
    CpusetCpus: s.cpusetCpus,
    CpusetMems: s.cpusetMems,
  };
  if (mode === "privileged")
    return { ...common, Privileged: true, ...(binds.length ? { Binds: [...binds] } : {}) };
  return {
    ...common,
    CapAdd: ["ALL"],
    CapDrop: missingCapabilities(hostBoundingSet()),
    SecurityOpt: ["seccomp=unconfined", "apparmor=unconfined"],
    // The API's spelling of the CLI's `--security-opt systempaths=unconfined`.
    MaskedPaths: [],
    ReadonlyPaths: [],
    Binds: ["/sys/fs/cgroup:/sys/fs/cgroup:rw", ...binds],
  } as Docker.HostConfig;
}
