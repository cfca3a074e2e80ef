import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { hostPlatform } from "../../../src/oci/platform.js";
import {
  amd64Levels,
  buildStaticElf,
  nativePlatforms,
  PROBE_TARGETS,
  probeEmulatedPlatforms,
} from "../../../src/worker/oci/platforms.js";

const QEMU_NAME: Record<string, string> = {
  amd64: "x86_64",
  arm64: "aarch64",
  arm: "arm",
  "386": "i386",
  riscv64: "riscv64",
  ppc64le: "ppc64le",
  s390x: "s390x",
};

function exitCode(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err) => resolve(err ? ((err as { code?: number }).code ?? null) : 0));
  });
}

describe("platform probing", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "kiln-platforms-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const t of PROBE_TARGETS) {
    it(`builds a ${t.platform.architecture} probe that exits 0 under its QEMU user emulator`, async function () {
      const qemu = `/usr/bin/qemu-${QEMU_NAME[t.platform.architecture]}-static`;
      if (!existsSync(qemu)) this.skip();
      const file = path.join(dir, `probe-${t.platform.architecture}`);
      await writeFile(file, buildStaticElf(t));
      await chmod(file, 0o755);
      assert.equal(await exitCode(qemu, [file]), 0);
    });
  }

  it("sets the ELF class, byte order and machine of each probe", () => {
    const s390 = buildStaticElf(PROBE_TARGETS.find((t) => t.platform.architecture === "s390x")!);
    assert.deepEqual([...s390.subarray(0, 6)], [0x7f, 0x45, 0x4c, 0x46, 2, 2]);
    assert.equal(s390.readUInt16BE(18), 22);
    const arm = buildStaticElf(PROBE_TARGETS.find((t) => t.platform.architecture === "arm")!);
    assert.equal(arm[4], 1);
    assert.equal(arm.readUInt16LE(18), 40);
  });

  it("derives amd64 levels from CPU flags, stopping at the first level not met", () => {
    const v2 = ["cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"];
    assert.deepEqual(amd64Levels(new Set(v2)), ["v2"]);
    assert.deepEqual(
      amd64Levels(new Set([...v2, "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"])),
      ["v2"],
    );
    assert.deepEqual(amd64Levels(new Set(["sse2"])), []);
  });

  it("lists the host platform first among native platforms", async () => {
    const native = await nativePlatforms();
    assert.deepEqual(native[0], hostPlatform());
  });

  it("reports arm64 as emulated exactly when binfmt_misc has an aarch64 handler", async function () {
    if (hostPlatform().architecture !== "amd64") this.skip();
    const handler = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
    const registered = existsSync(handler) && (await readFile(handler, "utf8")).startsWith("enabled");
    const emulated = await probeEmulatedPlatforms();
    assert.equal(
      emulated.some((p) => p.architecture === "arm64"),
      registered,
    );
    assert.ok(!emulated.some((p) => p.architecture === "amd64"));
  });
});
