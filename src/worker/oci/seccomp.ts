// The seccomp filter of sandboxed RUN steps: denies the system calls Docker's default profile denies
// to a container holding only the default capabilities, while everything else stays allowed.
import type { LinuxSeccomp } from "./runtime-spec.js";

const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;

/**
 * Calls outside the default capability set (kernel modules, clocks, mounts, namespaces, keyrings,
 * tracing of other processes' memory) plus those capabilities do not guard at all but Docker still
 * denies: keyrings are not namespaced, userfaultfd/perf/bpf widen the kernel's attack surface.
 */
const DENIED = [
  "acct",
  "add_key",
  "bpf",
  "clock_adjtime",
  "clock_settime",
  "create_module",
  "delete_module",
  "finit_module",
  "fsconfig",
  "fsmount",
  "fsopen",
  "fspick",
  "get_kernel_syms",
  "init_module",
  "ioperm",
  "iopl",
  "kcmp",
  "kexec_file_load",
  "kexec_load",
  "keyctl",
  "lookup_dcookie",
  "mount",
  "mount_setattr",
  "move_mount",
  "nfsservctl",
  "open_by_handle_at",
  "open_tree",
  "perf_event_open",
  "pivot_root",
  "query_module",
  "quotactl",
  "quotactl_fd",
  "reboot",
  "request_key",
  "setns",
  "settimeofday",
  "stime",
  "swapoff",
  "swapon",
  "_sysctl",
  "sysfs",
  "umount",
  "umount2",
  "unshare",
  "uselib",
  "userfaultfd",
  "ustat",
  "vm86",
  "vm86old",
];

function architectures(hostArch: string): string[] {
  switch (hostArch) {
    case "amd64":
      return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
    case "arm64":
      return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"];
    case "ppc64le":
      return ["SCMP_ARCH_PPC64LE"];
    case "s390x":
      return ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"];
    case "riscv64":
      return ["SCMP_ARCH_RISCV64"];
    default:
      return [];
  }
}

/** The profile for a host of architecture `hostArch` (Go naming: amd64, arm64, ...). */
export function defaultSeccompProfile(hostArch: string): LinuxSeccomp {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: architectures(hostArch),
    syscalls: [
      { names: DENIED, action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      // New user namespaces would hand the process a full capability set inside them.
      {
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        // s390 puts the flags in the second argument.
        args: [
          {
            index: hostArch === "s390x" ? 1 : 0,
            value: CLONE_NEWUSER,
            valueTwo: CLONE_NEWUSER,
            op: "SCMP_CMP_MASKED_EQ",
          },
        ],
      },
      // clone3 passes its flags in memory, where seccomp cannot look; ENOSYS makes libc fall back to clone.
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
    ],
  };
}
