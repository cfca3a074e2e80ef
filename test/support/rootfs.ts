// Test root filesystems: a busybox tree with applet links and a small passwd/group, made on demand.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { buildStaticElf } from "../../src/worker/oci/platforms.js";

export const HOST_BUSYBOX = "/usr/bin/busybox";

export const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "user:x:1000:1000:user:/home/user:/bin/sh",
  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
  "",
].join("\n");

export const GROUP = ["root:x:0:", "staff:x:50:user", "user:x:1000:", "nogroup:x:65534:", ""].join("\n");

export interface BusyboxRootfsOptions {
  /** A static busybox for the rootfs's architecture; defaults to the host's. */
  readonly busybox?: string;
}

/**
 * Fills `dir` with /bin/busybox, a /bin link per applet, /etc/passwd and /etc/group (root; `user`
 * 1000:1000 in its own group and in `staff` 50), /root, /home/user and a world-writable /tmp.
 */
export async function makeBusyboxRootfs(dir: string, opts: BusyboxRootfsOptions = {}): Promise<string> {
  const busybox = opts.busybox ?? HOST_BUSYBOX;
  for (const d of ["bin", "etc", "root", "home/user", "tmp", "usr/bin", "sbin"]) {
    await mkdir(path.join(dir, d), { recursive: true });
  }
  await chmod(path.join(dir, "tmp"), 0o1777);
  await copyFile(busybox, path.join(dir, "bin/busybox"));
  await chmod(path.join(dir, "bin/busybox"), 0o755);
  // The host's busybox lists the applets; a foreign one has the same set when from the same release.
  const applets = execFileSync(HOST_BUSYBOX, ["--list"], { encoding: "utf8" })
    .split("\n")
    .filter((a) => a !== "" && a !== "busybox" && !a.includes("/"));
  for (const a of applets) await symlink("busybox", path.join(dir, "bin", a));
  await writeFile(path.join(dir, "etc/passwd"), PASSWD);
  await writeFile(path.join(dir, "etc/group"), GROUP);
  return dir;
}

/** A static arm64 busybox, when one was unpacked for tests (`KILN_TEST_ARM64_BUSYBOX`). */
export function arm64Busybox(): string | undefined {
  const p = process.env.KILN_TEST_ARM64_BUSYBOX;
  return p && existsSync(p) ? p : undefined;
}

/** aarch64 machine code: uname(buf); write(1, buf.machine, strlen); exit(0). */
const AARCH64_UNAME_MACHINE = [
  0xd10803ff, // sub  sp, sp, #0x200
  0x910003e0, // mov  x0, sp
  0xd2801408, // mov  x8, #160 (uname)
  0xd4000001, // svc  #0
  0x910413e1, // add  x1, sp, #260 (utsname.machine)
  0xd2800002, // mov  x2, #0
  0x38626823, // loop: ldrb w3, [x1, x2]
  0x34000063, // cbz  w3, done
  0x91000442, // add  x2, x2, #1
  0x17fffffd, // b    loop
  0xd2800020, // done: mov x0, #1
  0xd2800808, // mov  x8, #64 (write)
  0xd4000001, // svc  #0
  0xd2800000, // mov  x0, #0
  0xd2800ba8, // mov  x8, #93 (exit)
  0xd4000001, // svc  #0
];

/** Writes a static aarch64 program printing the kernel's machine name (`uname -m`) to `file`. */
export async function writeAarch64UnameProgram(file: string): Promise<void> {
  const code = AARCH64_UNAME_MACHINE.flatMap((w) => [
    w & 0xff,
    (w >>> 8) & 0xff,
    (w >>> 16) & 0xff,
    w >>> 24,
  ]);
  const elf = buildStaticElf({
    platform: { os: "linux", architecture: "arm64" },
    bits: 64,
    littleEndian: true,
    machine: 183,
    flags: 0,
    code,
  });
  await writeFile(file, elf);
  await chmod(file, 0o755);
}
