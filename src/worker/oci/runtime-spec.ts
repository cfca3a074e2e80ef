// OCI runtime spec (1.0.2) documents for RUN steps, with BuildKit's defaults for namespaces,
// capabilities, mounts, masked paths and the insecure (privileged) mode.
import type { NetworkMode, SecurityMode } from "../../llb/ops.js";
import { capabilitiesIn } from "./capabilities.js";
import { defaultSeccompProfile } from "./seccomp.js";
import type { ResolvedUser } from "./user.js";

export interface RuntimeMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface LinuxDevice {
  path: string;
  type: "c" | "b";
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface LinuxDeviceCgroup {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface LinuxSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface LinuxSeccomp {
  defaultAction: string;
  architectures: string[];
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: LinuxSeccompArg[] }[];
}

export interface Capabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable?: string[];
  ambient?: string[];
}

export interface RuntimeSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Capabilities;
    rlimits?: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: RuntimeMount[];
  linux: {
    cgroupsPath?: string;
    resources: { devices: LinuxDeviceCgroup[] };
    namespaces: { type: string; path?: string }[];
    devices?: LinuxDevice[];
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp?: LinuxSeccomp;
  };
}

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** containerd's default set, which BuildKit uses for sandboxed steps. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/**
 * The capabilities in `mask` (a CapEff/CapBnd bit set from /proc/<pid>/status) that we can name.
 * Privileged steps get what the engine itself holds, as BuildKit does: asking for more fails.
 */
export function capabilitiesInMask(mask: bigint): string[] {
  return capabilitiesIn(mask).map((n) => `CAP_${n}`);
}

/** Docker's defaults: kernel interfaces that leak host information or allow host changes. */
export const MASKED_PATHS: readonly string[] = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

export const READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

const RLIMIT_NAMES = new Set([
  "as",
  "core",
  "cpu",
  "data",
  "fsize",
  "locks",
  "memlock",
  "msgqueue",
  "nice",
  "nofile",
  "nproc",
  "rss",
  "rtprio",
  "rttime",
  "sigpending",
  "stack",
]);

/** Env with later entries overriding earlier ones, plus PATH and HOME defaults when missing. */
export function processEnv(env: readonly string[], home: string): string[] {
  const byKey = new Map<string, string>();
  for (const e of env) {
    const eq = e.indexOf("=");
    byKey.set(eq < 0 ? e : e.slice(0, eq), e);
  }
  if (!byKey.has("PATH")) byKey.set("PATH", `PATH=${DEFAULT_PATH}`);
  if (!byKey.has("HOME")) byKey.set("HOME", `HOME=${home}`);
  return [...byKey.values()];
}

/**
 * The cgroup for a run: under `cgroupParent` when given (a systemd `slice:prefix:` form takes the id
 * directly), else under a `kiln` group so runs are easy to find and account for.
 */
export function cgroupsPath(id: string, cgroupParent?: string): string {
  if (cgroupParent) {
    if (cgroupParent.includes(".slice") && cgroupParent.endsWith(":")) return cgroupParent + id;
    return `/${cgroupParent.replace(/^\/+|\/+$/g, "")}/kiln/${id}`;
  }
  return `/kiln/${id}`;
}

export interface SpecInput {
  readonly id: string;
  readonly args: readonly string[];
  /** Final environment (see `processEnv`). */
  readonly env: readonly string[];
  readonly cwd: string;
  readonly user: ResolvedUser;
  readonly hostname: string;
  readonly network: NetworkMode;
  readonly security: SecurityMode;
  /** Go-style host architecture, for the seccomp filter. */
  readonly hostArch: string;
  readonly rootPath: string;
  readonly hostsPath: string;
  readonly resolvConfPath: string;
  /** The step's own mounts, already in runtime form; they win over defaults at the same destination. */
  readonly mounts: readonly RuntimeMount[];
  readonly ulimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly shmSize?: number;
  readonly cgroupParent?: string;
  /** For `insecure`: every capability the kernel supports. */
  readonly allCapabilities?: readonly string[];
  /** For `insecure`: host devices to create inside the container. */
  readonly hostDevices?: readonly LinuxDevice[];
}

function defaultMounts(shmSize: number): RuntimeMount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", `size=${shmSize}`],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["ro", "nosuid", "noexec", "nodev"],
    },
  ];
}

/** Later mounts replace earlier ones at the same destination, keeping the earlier one's position. */
function dedupMounts(mounts: readonly RuntimeMount[]): RuntimeMount[] {
  const out: RuntimeMount[] = [];
  const at = new Map<string, number>();
  for (const m of mounts) {
    const i = at.get(m.destination);
    if (i === undefined) {
      at.set(m.destination, out.length);
      out.push(m);
    } else {
      out[i] = m;
    }
  }
  return out;
}

export function generateRuntimeSpec(input: SpecInput): RuntimeSpec {
  if (input.args.length === 0) throw new Error("no command given to run");
  const shmSize = input.shmSize && input.shmSize > 0 ? input.shmSize : DEFAULT_SHM_SIZE;
  const rlimits = (input.ulimits ?? []).map((u) => {
    const name = u.name.toLowerCase();
    if (!RLIMIT_NAMES.has(name)) {
      throw new Error(
        `unknown ulimit ${JSON.stringify(u.name)}: expected one of ${[...RLIMIT_NAMES].join(", ")}`,
      );
    }
    if (u.soft > u.hard)
      throw new Error(`ulimit ${name}: soft limit ${u.soft} is above hard limit ${u.hard}`);
    return { type: `RLIMIT_${name.toUpperCase()}`, hard: u.hard, soft: u.soft };
  });

  const insecure = input.security === "insecure";
  const caps = insecure ? [...(input.allCapabilities ?? DEFAULT_CAPABILITIES)] : [...DEFAULT_CAPABILITIES];
  const capabilities: Capabilities = insecure
    ? { bounding: caps, effective: caps, permitted: caps, inheritable: caps, ambient: caps }
    : { bounding: caps, effective: caps, permitted: caps };

  let mounts = defaultMounts(shmSize);
  if (insecure) {
    // Privileged steps may write to /sys and the cgroup tree, as with `docker run --privileged`.
    mounts = mounts.map((m) =>
      m.type === "sysfs" || m.type === "cgroup" ? { ...m, options: m.options.filter((o) => o !== "ro") } : m,
    );
  }
  mounts.push(
    {
      destination: "/etc/resolv.conf",
      type: "bind",
      source: input.resolvConfPath,
      options: ["nosuid", "noexec", "nodev", "rbind", "ro"],
    },
    {
      destination: "/etc/hosts",
      type: "bind",
      source: input.hostsPath,
      options: ["nosuid", "noexec", "nodev", "rbind", "ro"],
    },
    ...input.mounts,
  );

  const namespaces: { type: string }[] = [
    { type: "pid" },
    { type: "ipc" },
    { type: "uts" },
    { type: "mount" },
  ];
  // "sandbox" without a CNI setup shares the host's network, as BuildKit's default does.
  if (input.network === "none") namespaces.push({ type: "network" });

  const user: RuntimeSpec["process"]["user"] = { uid: input.user.uid, gid: input.user.gid };
  if (input.user.additionalGids.length > 0) user.additionalGids = [...input.user.additionalGids];

  const spec: RuntimeSpec = {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user,
      args: [...input.args],
      env: [...input.env],
      cwd: input.cwd,
      capabilities,
      // BuildKit lets setuid programs (su, sudo) gain privileges in build steps.
      noNewPrivileges: false,
    },
    root: { path: input.rootPath, readonly: false },
    hostname: input.hostname,
    mounts: dedupMounts(mounts),
    linux: {
      cgroupsPath: cgroupsPath(input.id, input.cgroupParent),
      resources: {
        devices: insecure
          ? [
              { allow: true, type: "c", access: "rwm" },
              { allow: true, type: "b", access: "rwm" },
            ]
          : [{ allow: false, access: "rwm" }],
      },
      namespaces,
      maskedPaths: insecure ? [] : [...MASKED_PATHS],
      readonlyPaths: insecure ? [] : [...READONLY_PATHS],
    },
  };
  // Without ulimits the process inherits the engine's limits, as in BuildKit.
  if (rlimits.length > 0) spec.process.rlimits = rlimits;
  if (insecure && input.hostDevices && input.hostDevices.length > 0)
    spec.linux.devices = [...input.hostDevices];
  if (!insecure) spec.linux.seccomp = defaultSeccompProfile(input.hostArch);
  return spec;
}
