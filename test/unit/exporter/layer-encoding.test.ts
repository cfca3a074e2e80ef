// How the exporter encodes layers: the parallel gzip (read back by the system's gzip and tar, not
// only by Node), and rewrite-timestamp's clamping of tar times (checked with GNU tar's listing).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { crc32, gzipLayer } from "../../../src/archive/compression.js";
import { TarTimestampClamp } from "../../../src/exporter/rewrite-timestamp.js";

async function bytesOf(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const gunzipWithSystemGzip = (gz: Buffer): Buffer =>
  execFileSync("gzip", ["-dc"], { input: gz, maxBuffer: 1 << 28 });

describe("parallel gzip of layers", () => {
  const text = Buffer.from("a line of a text file that deflate shrinks\n".repeat(120_000));
  const random = randomBytes(3 << 20);
  const mixed = Buffer.concat([text.subarray(0, 1_500_000), random.subarray(0, 2_000_000), text]);

  for (const [name, data] of [
    ["text", text],
    ["random", random],
    ["mixed", mixed],
    ["empty", Buffer.alloc(0)],
    ["tiny", Buffer.from("x")],
  ] as const) {
    it(`gives one gzip member that gzip(1) decompresses to the input: ${name}`, async () => {
      const gz = await bytesOf(gzipLayer(Readable.from([data]), { chunkSize: 256 * 1024 }));
      assert.deepEqual([...gz.subarray(0, 3)], [0x1f, 0x8b, 0x08]);
      assert.ok(gunzipWithSystemGzip(gz).equals(data));
      assert.equal(gz.readUInt32LE(gz.length - 8), crc32(data));
      assert.equal(gz.readUInt32LE(gz.length - 4), data.length);
    });
  }

  it("gives the same bytes whatever the concurrency and however the input is cut", async () => {
    const one = await bytesOf(gzipLayer(Readable.from([mixed]), { concurrency: 1, chunkSize: 256 * 1024 }));
    const pieces: Buffer[] = [];
    for (let i = 0; i < mixed.length; i += 77_777) pieces.push(mixed.subarray(i, i + 77_777));
    const many = await bytesOf(gzipLayer(Readable.from(pieces), { concurrency: 4, chunkSize: 256 * 1024 }));
    assert.ok(one.equals(many));
  });

  it("compresses text as well as zlib in one piece, and stores random bytes without growing them", async () => {
    const gz = await bytesOf(gzipLayer(Readable.from([text])));
    assert.ok(gz.length < gzipSync(text).length * 1.02, `${gz.length} vs ${gzipSync(text).length}`);
    const rnd = await bytesOf(gzipLayer(Readable.from([random])));
    assert.ok(rnd.length < random.length * 1.001);
  });

  it("honours level 0 (stored) and refuses a level out of range", async () => {
    const stored = await bytesOf(gzipLayer(Readable.from([text]), { level: 0 }));
    assert.ok(stored.length > text.length);
    assert.ok(gunzipWithSystemGzip(stored).equals(text));
    assert.throws(() => gzipLayer(Readable.from([text]), { level: 10 }), /out of range/);
  });

  it("fails the stream when its source fails", async () => {
    const source = new Readable({ read() {} });
    const out = gzipLayer(source);
    source.push(text.subarray(0, 1000));
    setImmediate(() => source.destroy(new Error("disk gone")));
    await assert.rejects(bytesOf(out), /disk gone/);
  });
});

describe("rewrite-timestamp's tar clamping", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-clamp-"));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const EPOCH = 1_700_000_000;

  /** GNU tar's verbose listing: "mode owner size date time name" with --full-time seconds. */
  const listing = (tarBytes: Buffer) =>
    execFileSync("tar", ["-tv", "--full-time", "--numeric-owner", "-f", "-"], {
      input: tarBytes,
      encoding: "utf8",
      env: { ...process.env, TZ: "UTC" },
    });

  it("clamps later times to the epoch, keeps earlier ones, and leaves contents alone (ustar and PAX)", async () => {
    const src = join(dir, "src");
    execFileSync("mkdir", ["-p", join(src, "dir")]);
    await writeFile(join(src, "dir", "new.txt"), "new\n");
    await writeFile(join(src, "old.txt"), "old\n");
    await writeFile(join(src, `${"long-name-".repeat(12)}.txt`), "long\n");
    await writeFile(join(src, "big.bin"), randomBytes(70_000));
    await utimes(join(src, "old.txt"), 1_000_000_000, 1_000_000_000);
    for (const format of ["ustar", "posix", "gnu"]) {
      const names = format === "ustar" ? ["dir", "old.txt", "big.bin"] : ["."];
      const tarBytes = execFileSync("tar", ["-c", `--format=${format}`, "-C", src, "-f", "-", ...names], {
        maxBuffer: 1 << 26,
      });
      const clamped = await bytesOf(Readable.from([tarBytes]).pipe(new TarTimestampClamp(EPOCH)));
      const lines = listing(clamped).trim().split("\n");
      for (const line of lines) {
        const name = line.split(/\s+/).slice(5).join(" ");
        const when = line.split(/\s+/).slice(3, 5).join(" ");
        const expected = name.endsWith("old.txt") ? "2001-09-09 01:46:40" : "2023-11-14 22:13:20";
        assert.equal(when, expected, `${format}: ${line}`);
      }
      // Contents are the same: extract both and compare.
      for (const [tag, bytes] of [
        ["orig", tarBytes],
        ["clamped", clamped],
      ] as const) {
        const out = join(dir, `${format}-${tag}`);
        execFileSync("mkdir", ["-p", out]);
        execFileSync("tar", ["-x", "-C", out, "-f", "-"], { input: bytes });
      }
      execFileSync("diff", ["-r", join(dir, `${format}-orig`), join(dir, `${format}-clamped`)]);
    }
  });

  it("clamps PAX mtime records, resizing the extended header", async () => {
    const src = join(dir, "pax");
    execFileSync("mkdir", ["-p", src]);
    await writeFile(join(src, "f"), "f\n");
    await utimes(join(src, "f"), 1_800_000_000.5, 1_800_000_000.5);
    // GNU tar in PAX format writes sub-second times as PAX records.
    const tarBytes = execFileSync("tar", ["-c", "--format=posix", "-C", src, "-f", "-", "f"]);
    assert.match(tarBytes.toString("latin1"), /mtime=1800000000\.5/);
    const clamped = await bytesOf(Readable.from([tarBytes]).pipe(new TarTimestampClamp(EPOCH)));
    assert.doesNotMatch(clamped.toString("latin1"), /mtime=1800000000/);
    assert.match(listing(clamped), /2023-11-14 22:13:20 f/);
  });

  it("refuses what is not a tar", async () => {
    await assert.rejects(
      bytesOf(Readable.from([randomBytes(1024)]).pipe(new TarTimestampClamp(EPOCH))),
      /not a valid tar/,
    );
  });
});
