import assert from "node:assert/strict";
import {
  capabilitiesInMask,
  cgroupsPath,
  DEFAULT_CAPABILITIES,
  generateRuntimeSpec,
  processEnv,
  type SpecInput,
} from "../../../src/worker/oci/runtime-spec.js";

const base: SpecInput = {
  id: "kiln-abc",
  args: ["/bin/sh", "-c", "true"],
  env: ["PATH=/bin"],
  cwd: "/",
  user: { uid: 1000, gid: 1000, additionalGids: [50], home: "/home/user" },
  hostname: "buildkitsandbox",
  network: "sandbox",
  security: "sandbox",
  hostArch: "amd64",
  rootPath: "rootfs",
  hostsPath: "/b/hosts",
  resolvConfPath: "/b/resolv.conf",
  mounts: [],
};

const mount = (spec: ReturnType<typeof generateRuntimeSpec>, dest: string) =>
  spec.mounts.find((m) => m.destination === dest);

describe("OCI runtime spec generation", () => {
  it("declares spec version 1.0.2 with a writable root", () => {
    const s = generateRuntimeSpec(base);
    assert.equal(s.ociVersion, "1.0.2");
    assert.deepEqual(s.root, { path: "rootfs", readonly: false });
  });

  it("creates mount, pid, ipc and uts namespaces and shares the network for sandbox", () => {
    const types = generateRuntimeSpec(base).linux.namespaces.map((n) => n.type);
    assert.deepEqual(types.sort(), ["ipc", "mount", "pid", "uts"]);
  });

  it("shares the host network for host", () => {
    const types = generateRuntimeSpec({ ...base, network: "host" }).linux.namespaces.map((n) => n.type);
    assert.ok(!types.includes("network"));
  });

  it("creates a network namespace for none", () => {
    const types = generateRuntimeSpec({ ...base, network: "none" }).linux.namespaces.map((n) => n.type);
    assert.ok(types.includes("network"));
  });

  it("sets the user with supplementary groups", () => {
    assert.deepEqual(generateRuntimeSpec(base).process.user, { uid: 1000, gid: 1000, additionalGids: [50] });
  });

  it("gives sandboxed steps the default capabilities, a seccomp filter and masked paths", () => {
    const s = generateRuntimeSpec(base);
    assert.deepEqual(s.process.capabilities.bounding, DEFAULT_CAPABILITIES);
    assert.ok(!s.process.capabilities.effective.includes("CAP_SYS_ADMIN"));
    assert.equal(s.linux.seccomp?.defaultAction, "SCMP_ACT_ALLOW");
    assert.ok(s.linux.seccomp?.syscalls.some((c) => c.names.includes("keyctl")));
    assert.ok(s.linux.maskedPaths.includes("/proc/kcore"));
    assert.ok(s.linux.readonlyPaths.includes("/proc/sys"));
    assert.deepEqual(s.linux.resources.devices, [{ allow: false, access: "rwm" }]);
  });

  it("makes insecure steps privileged: given capabilities, no seccomp, all devices, writable /sys", () => {
    const s = generateRuntimeSpec({
      ...base,
      security: "insecure",
      allCapabilities: ["CAP_SYS_ADMIN", "CAP_CHOWN"],
      hostDevices: [{ path: "/dev/fuse", type: "c", major: 10, minor: 229 }],
    });
    assert.deepEqual(s.process.capabilities.ambient, ["CAP_SYS_ADMIN", "CAP_CHOWN"]);
    assert.equal(s.linux.seccomp, undefined);
    assert.deepEqual(s.linux.maskedPaths, []);
    assert.ok(s.linux.resources.devices.every((d) => d.allow));
    assert.equal(s.linux.devices?.[0]?.path, "/dev/fuse");
    assert.ok(!mount(s, "/sys")!.options.includes("ro"));
  });

  it("mounts /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue and a read-only /sys", () => {
    const s = generateRuntimeSpec(base);
    assert.equal(mount(s, "/proc")?.type, "proc");
    assert.equal(mount(s, "/dev")?.type, "tmpfs");
    assert.equal(mount(s, "/dev/pts")?.type, "devpts");
    assert.equal(mount(s, "/dev/mqueue")?.type, "mqueue");
    assert.ok(mount(s, "/sys")?.options.includes("ro"));
    assert.equal(mount(s, "/run"), undefined);
  });

  it("sizes /dev/shm at 64 MiB by default and from shmSize when given", () => {
    assert.ok(mount(generateRuntimeSpec(base), "/dev/shm")?.options.includes(`size=${64 * 1024 * 1024}`));
    assert.ok(
      mount(generateRuntimeSpec({ ...base, shmSize: 1024 }), "/dev/shm")?.options.includes("size=1024"),
    );
  });

  it("binds hosts and resolv.conf read-only from the generated files", () => {
    const s = generateRuntimeSpec(base);
    assert.deepEqual(mount(s, "/etc/hosts"), {
      destination: "/etc/hosts",
      type: "bind",
      source: "/b/hosts",
      options: ["nosuid", "noexec", "nodev", "rbind", "ro"],
    });
    assert.equal(mount(s, "/etc/resolv.conf")?.source, "/b/resolv.conf");
  });

  it("lets a step mount replace a default mount at the same destination", () => {
    const own = { destination: "/etc/hosts", type: "bind", source: "/mine", options: ["rbind"] };
    const s = generateRuntimeSpec({ ...base, mounts: [own] });
    assert.deepEqual(
      s.mounts.filter((m) => m.destination === "/etc/hosts"),
      [own],
    );
  });

  it("maps ulimits to rlimits and inherits limits when none are given", () => {
    const s = generateRuntimeSpec({ ...base, ulimits: [{ name: "nofile", soft: 10, hard: 20 }] });
    assert.deepEqual(s.process.rlimits, [{ type: "RLIMIT_NOFILE", soft: 10, hard: 20 }]);
    assert.equal(generateRuntimeSpec(base).process.rlimits, undefined);
  });

  it("rejects an unknown ulimit name", () => {
    assert.throws(
      () => generateRuntimeSpec({ ...base, ulimits: [{ name: "files", soft: 1, hard: 1 }] }),
      /unknown ulimit "files"/,
    );
  });

  it("rejects a soft limit above the hard limit", () => {
    assert.throws(
      () => generateRuntimeSpec({ ...base, ulimits: [{ name: "nproc", soft: 5, hard: 1 }] }),
      /above hard limit/,
    );
  });

  it("rejects an empty command", () => {
    assert.throws(() => generateRuntimeSpec({ ...base, args: [] }), /no command/);
  });

  it("places the cgroup under the parent when given", () => {
    assert.equal(cgroupsPath("id1"), "/kiln/id1");
    assert.equal(cgroupsPath("id1", "/builds/"), "/builds/kiln/id1");
    assert.equal(cgroupsPath("id1", "system.slice:kiln:"), "system.slice:kiln:id1");
  });

  it("defaults PATH and HOME, lets later env entries win", () => {
    assert.deepEqual(processEnv(["A=1", "A=2"], "/home/u"), [
      "A=2",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOME=/home/u",
    ]);
    assert.deepEqual(processEnv(["PATH=/x", "HOME=/h"], "/home/u"), ["PATH=/x", "HOME=/h"]);
  });

  it("names the capabilities set in a capability mask", () => {
    assert.deepEqual(capabilitiesInMask(0b101n), ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
    assert.ok(capabilitiesInMask(1n << 21n).includes("CAP_SYS_ADMIN"));
  });
});
