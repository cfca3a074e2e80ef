// Which platforms this host runs: natively (with amd64 micro-architecture levels) and under emulation,
// found by running a tiny static program per architecture, as BuildKit's binfmt probe does.
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { hostPlatform, type Platform, samePlatform } from "../../oci/platform.js";

export interface ElfTarget {
  readonly platform: Platform;
  readonly bits: 32 | 64;
  readonly littleEndian: boolean;
  readonly machine: number;
  readonly flags: number;
  /** Machine code for exit(0). */
  readonly code: readonly number[];
}

const words = (le: boolean, ...ws: number[]): number[] =>
  ws.flatMap((w) => {
    const b = [(w >>> 24) & 0xff, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff];
    return le ? b.reverse() : b;
  });

/** exit(0) for each architecture we can probe, in each one's own instruction encoding. */
export const PROBE_TARGETS: readonly ElfTarget[] = [
  {
    platform: { os: "linux", architecture: "amd64" },
    bits: 64,
    littleEndian: true,
    machine: 62,
    flags: 0,
    // xor edi,edi; mov eax,60; syscall
    code: [0x31, 0xff, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05],
  },
  {
    platform: { os: "linux", architecture: "arm64" },
    bits: 64,
    littleEndian: true,
    machine: 183,
    flags: 0,
    // mov x0,#0; mov x8,#93; svc #0
    code: words(true, 0xd2800000, 0xd2800ba8, 0xd4000001),
  },
  {
    platform: { os: "linux", architecture: "arm", variant: "v7" },
    bits: 32,
    littleEndian: true,
    machine: 40,
    flags: 0x05000000,
    // mov r0,#0; mov r7,#1; svc #0
    code: words(true, 0xe3a00000, 0xe3a07001, 0xef000000),
  },
  {
    platform: { os: "linux", architecture: "386" },
    bits: 32,
    littleEndian: true,
    machine: 3,
    flags: 0,
    // xor ebx,ebx; mov eax,1; int 0x80
    code: [0x31, 0xdb, 0xb8, 1, 0, 0, 0, 0xcd, 0x80],
  },
  {
    platform: { os: "linux", architecture: "riscv64" },
    bits: 64,
    littleEndian: true,
    machine: 243,
    flags: 0x5,
    // li a0,0; li a7,93; ecall
    code: words(true, 0x00000513, 0x05d00893, 0x00000073),
  },
  {
    platform: { os: "linux", architecture: "ppc64le" },
    bits: 64,
    littleEndian: true,
    machine: 21,
    flags: 2,
    // li r0,1; li r3,0; sc
    code: words(true, 0x38000001, 0x38600000, 0x44000002),
  },
  {
    platform: { os: "linux", architecture: "s390x" },
    bits: 64,
    littleEndian: false,
    machine: 22,
    flags: 0,
    // lghi %r2,0; svc 1
    code: [0xa7, 0x29, 0, 0, 0x0a, 0x01],
  },
];

/** A minimal static ELF executable: one loadable segment holding headers and `code`, entry right after them. */
export function buildStaticElf(t: ElfTarget): Buffer {
  const is64 = t.bits === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const base = 0x10000;
  const entry = base + ehsize + phentsize;
  const size = ehsize + phentsize + t.code.length;
  const buf = Buffer.alloc(size);
  const le = t.littleEndian;
  const u16 = (v: number, o: number) => (le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o));
  const u32 = (v: number, o: number) => (le ? buf.writeUInt32LE(v, o) : buf.writeUInt32BE(v, o));
  const u64 = (v: number, o: number) =>
    le ? buf.writeBigUInt64LE(BigInt(v), o) : buf.writeBigUInt64BE(BigInt(v), o);
  const addr = is64 ? u64 : u32;

  buf.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, le ? 1 : 2, 1, 0], 0);
  u16(2, 16); // ET_EXEC
  u16(t.machine, 18);
  u32(1, 20); // EV_CURRENT
  addr(entry, 24);
  addr(ehsize, is64 ? 32 : 28); // e_phoff
  addr(0, is64 ? 40 : 32); // e_shoff
  u32(t.flags, is64 ? 48 : 36);
  u16(ehsize, is64 ? 52 : 40);
  u16(phentsize, is64 ? 54 : 42);
  u16(1, is64 ? 56 : 44); // e_phnum
  u16(0, is64 ? 58 : 46);
  u16(0, is64 ? 60 : 48);
  u16(0, is64 ? 62 : 50);

  const ph = ehsize;
  const PF_RX = 5;
  if (is64) {
    u32(1, ph); // PT_LOAD
    u32(PF_RX, ph + 4);
    u64(0, ph + 8); // p_offset
    u64(base, ph + 16); // p_vaddr
    u64(base, ph + 24); // p_paddr
    u64(size, ph + 32); // p_filesz
    u64(size, ph + 40); // p_memsz
    u64(0x1000, ph + 48); // p_align
  } else {
    u32(1, ph);
    u32(0, ph + 4);
    u32(base, ph + 8);
    u32(base, ph + 12);
    u32(size, ph + 16);
    u32(size, ph + 20);
    u32(PF_RX, ph + 24);
    u32(0x1000, ph + 28);
  }
  buf.set(t.code, ph + phentsize);
  return buf;
}

function runsToExitZero(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(file, [], { timeout: 10_000 }, (err) => resolve(err === null));
  });
}

/** The x86-64 micro-architecture levels (v2..v4) the CPU's flags in /proc/cpuinfo satisfy. */
export function amd64Levels(cpuFlags: ReadonlySet<string>): string[] {
  const levels: [string, string[]][] = [
    ["v2", ["cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"]],
    ["v3", ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"]],
    ["v4", ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]],
  ];
  const out: string[] = [];
  for (const [level, need] of levels) {
    if (!need.every((f) => cpuFlags.has(f))) break;
    out.push(level);
  }
  return out;
}

/** The host's own platform, with each amd64 level the CPU supports (linux/amd64/v2, ...). */
export async function nativePlatforms(): Promise<Platform[]> {
  const host = hostPlatform();
  const out: Platform[] = [host];
  if (host.architecture === "amd64") {
    const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
    const flagsLine = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? "";
    const flags = new Set(flagsLine.trim().split(/\s+/));
    for (const v of amd64Levels(flags)) out.push({ os: "linux", architecture: "amd64", variant: v });
  }
  return out;
}

/**
 * The non-native platforms whose programs actually run here: through QEMU registered with binfmt_misc,
 * or the kernel's 32-bit compatibility mode (386 on amd64, arm on arm64). A probe that ran is the
 * evidence: an engine in a container has no binfmt_misc mounted, yet the host's handlers registered
 * with the F flag (QEMU's interpreter opened at registration) run its programs all the same.
 */
export async function probeEmulatedPlatforms(): Promise<Platform[]> {
  const host = hostPlatform();
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-probe-"));
  try {
    const found = await Promise.all(
      PROBE_TARGETS.map(async (t, i) => {
        if (samePlatform(t.platform, host)) return undefined;
        const file = path.join(dir, `probe-${i}`);
        await writeFile(file, buildStaticElf(t));
        await chmod(file, 0o755);
        const ok = await runsToExitZero(file);
        return ok ? t.platform : undefined;
      }),
    );
    return found.filter((p): p is Platform => p !== undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
