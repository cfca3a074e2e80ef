import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deviceNumbers, readXattr } from "../../../src/archive/file-attrs.js";
import type { LayerEntry } from "../../../src/archive/layer-entry.js";
import { readTarEntries, type TarEntryHeader } from "../../../src/archive/tar-reader.js";
import { writeLayerTar } from "../../../src/archive/tar-writer.js";
import { makeTempDir, removeTempDir, streamBytes } from "./fixtures.js";

async function* each(entries: LayerEntry[]): AsyncGenerator<LayerEntry> {
  yield* entries;
}

async function headersOf(entries: LayerEntry[]): Promise<TarEntryHeader[]> {
  const out: TarEntryHeader[] = [];
  for await (const { header } of readTarEntries(writeLayerTar(each(entries)))) out.push(header);
  return out;
}

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 } as const;

describe("layer tar writing and reading", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir("tar");
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  it("keeps long and non-ASCII names and long link targets", async () => {
    const long = `${"d".repeat(120)}/${"f".repeat(150)}`;
    const headers = await headersOf([
      { ...base, path: long, kind: "symlink", linkTarget: `/${"t".repeat(200)}` },
      { ...base, path: "répertoire/ファイル", kind: "symlink", linkTarget: "cible-é" },
      { ...base, path: `${"p".repeat(140)}/short`, kind: "dir", mode: 0o755 },
    ]);
    assert.deepEqual(
      headers.map((h) => [h.name, h.linkname]),
      [
        [long, `/${"t".repeat(200)}`],
        ["répertoire/ファイル", "cible-é"],
        [`${"p".repeat(140)}/short/`, ""],
      ],
    );
  });

  it("keeps binary xattr values, a zero mode and ids beyond the octal fields", async () => {
    const cap = Buffer.from([1, 0, 0, 2, 0x80, 0xff, 0, 0]);
    const [h] = await headersOf([
      {
        ...base,
        path: "f",
        kind: "fifo",
        mode: 0,
        uid: 3_000_000,
        gid: 4_000_000,
        xattrs: new Map([["security.capability", cap]]),
      },
    ]);
    assert.equal(h!.mode, 0);
    assert.equal(h!.uid, 3_000_000);
    assert.equal(h!.gid, 4_000_000);
    assert.ok(h!.xattrs.get("security.capability")?.equals(cap));
  });

  it("names whiteouts .wh.<name> and opaque markers .wh..wh..opq, in the entry's directory", async () => {
    const headers = await headersOf([
      { ...base, path: "a/b", kind: "whiteout" },
      { ...base, path: "top", kind: "whiteout" },
      { ...base, path: "a/c", kind: "opaque" },
    ]);
    assert.deepEqual(
      headers.map((h) => `${h.type} ${h.name} ${h.size}`),
      ["file a/.wh.b 0", "file .wh.top 0", "file a/c/.wh..wh..opq 0"],
    );
  });

  it("writes file content, devices and hard links that GNU tar reads back (xattrs included)", async () => {
    const src = join(dir, "content");
    await writeFile(src, "hello layer\n");
    const cap = Buffer.from([1, 0, 0, 2, 0x80, 0xff, 0, 0]);
    const tar = await streamBytes(
      writeLayerTar(
        each([
          { ...base, path: "bin", kind: "dir", mode: 0o755 },
          {
            ...base,
            path: "bin/tool",
            kind: "file",
            size: 12,
            sourcePath: src,
            xattrs: new Map([["trusted.cap", cap]]),
          },
          { ...base, path: "bin/alias", kind: "hardlink", linkTarget: "bin/tool" },
          { ...base, path: "null", kind: "char-device", devMajor: 1, devMinor: 3 },
        ]),
      ),
    );
    await writeFile(join(dir, "layer.tar"), tar);
    const out = join(dir, "out");
    execFileSync("mkdir", [out]);
    execFileSync("tar", ["--xattrs", "--xattrs-include=*", "-xpf", join(dir, "layer.tar"), "-C", out]);
    assert.equal(await readFile(join(out, "bin/alias"), "utf8"), "hello layer\n");
    assert.ok((await readXattr(join(out, "bin/tool"), "trusted.cap"))?.equals(cap));
    const { statSync } = await import("node:fs");
    assert.equal(statSync(join(out, "bin/tool")).ino, statSync(join(out, "bin/alias")).ino);
    assert.deepEqual(deviceNumbers(statSync(join(out, "null")).rdev), { major: 1, minor: 3 });
  });
});

describe("device numbers", () => {
  it("split a dev_t the way glibc does, large majors and minors included", () => {
    // makedev(259, 70000) = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
    const dev = (70000n & 0xffn) | ((259n & 0xfffn) << 8n) | ((70000n & ~0xffn) << 12n);
    assert.deepEqual(deviceNumbers(dev), { major: 259, minor: 70000 });
    assert.deepEqual(deviceNumbers(0x0103), { major: 1, minor: 3 });
  });
});
