import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";
import { isTarHeader } from "../../../src/worker/fileop/archive-stream.js";
import { executeFileAction } from "../../../src/worker/fileop/execute.js";
import { copyAction } from "./copy-helpers.js";
import { TempDirs } from "./tree-fixtures.js";

type Entry = {
  name: string;
  type?: "file" | "directory" | "symlink" | "link";
  body?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
};

async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(Buffer.from(chunk as Uint8Array));
  })();
  for (const e of entries) {
    const { body, ...header } = e;
    await new Promise<void>((resolve, reject) =>
      pack.entry({ mode: 0o644, mtime: new Date(1_500_000_000_000), ...header }, body ?? "", (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const compressWith = (tool: string, data: Buffer) => execFileSync(tool, ["-c"], { input: data });

describe("ADD of local archives", () => {
  const temp = new TempDirs();
  let src: string;
  let dest: string;
  let archive: Buffer;
  const add = (file: string, dest_ = "/out/") =>
    executeFileAction(copyAction({ src: file, dest: dest_, attemptUnpackDockerCompatibility: true }), {
      srcRoot: src,
      destRoot: dest,
    });

  beforeEach(async () => {
    src = await temp.make();
    dest = await temp.make();
    archive = await makeTar([
      { name: "app/", type: "directory", mode: 0o750, uid: 10, gid: 11 },
      { name: "app/run.sh", body: "#!/bin/sh\n", mode: 0o755, uid: 10, gid: 11 },
      { name: "app/link", type: "symlink", linkname: "run.sh" },
      { name: "app/hard", type: "link", linkname: "app/run.sh" },
    ]);
  });
  afterEach(() => temp.cleanup());

  const assertExtracted = async () => {
    assert.equal(await readFile(join(dest, "out/app/run.sh"), "utf8"), "#!/bin/sh\n");
    const st = await stat(join(dest, "out/app/run.sh"));
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid, st.mtimeMs], [0o755, 10, 11, 1_500_000_000_000]);
    assert.equal(await readlink(join(dest, "out/app/link")), "run.sh");
    assert.equal((await stat(join(dest, "out/app/hard"))).ino, st.ino);
    const dir = await stat(join(dest, "out/app"));
    assert.deepEqual([dir.mode & 0o7777, dir.uid, dir.mtimeMs], [0o750, 10, 1_500_000_000_000]);
  };

  it("extracts a plain tar into the destination with the archive's metadata", async () => {
    await writeFile(join(src, "app.tar"), archive);
    await add("app.tar");
    await assertExtracted();
  });

  for (const [name, compress] of [
    ["gzip", (d: Buffer) => gzipSync(d)],
    ["bzip2", (d: Buffer) => compressWith("bzip2", d)],
    ["xz", (d: Buffer) => compressWith("xz", d)],
    ["zstd", (d: Buffer) => compressWith("zstd", d)],
  ] as const) {
    it(`detects and extracts a ${name}-compressed tar by its magic bytes, whatever its name`, async () => {
      await writeFile(join(src, "archive.bin"), compress(archive));
      await add("archive.bin");
      await assertExtracted();
    });
  }

  it("copies a file that is not an archive as a file", async () => {
    await writeFile(join(src, "notes.tar"), "just text, not a tar");
    await add("notes.tar");
    assert.equal(await readFile(join(dest, "out/notes.tar"), "utf8"), "just text, not a tar");
  });

  it("copies a gzip file that holds no tar as a file", async () => {
    await writeFile(join(src, "data.gz"), gzipSync("plain data"));
    await add("data.gz");
    assert.ok((await lstat(join(dest, "out/data.gz"))).isFile());
  });

  it("copies an archive as a file when unpacking is not asked for", async () => {
    await writeFile(join(src, "app.tar"), archive);
    await executeFileAction(copyAction({ src: "app.tar", dest: "/out/" }), { srcRoot: src, destRoot: dest });
    assert.deepEqual(await readFile(join(dest, "out/app.tar")), archive);
  });

  it("extracts each archive a wildcard matches", async () => {
    await writeFile(join(src, "one.tar"), await makeTar([{ name: "one.txt", body: "1" }]));
    await writeFile(join(src, "two.tar"), await makeTar([{ name: "two.txt", body: "2" }]));
    await add("*.tar");
    assert.equal(await readFile(join(dest, "out/one.txt"), "utf8"), "1");
    assert.equal(await readFile(join(dest, "out/two.txt"), "utf8"), "2");
  });

  it("refuses entries that climb out of the destination", async () => {
    await writeFile(join(src, "evil.tar"), await makeTar([{ name: "../../escape.txt", body: "x" }]));
    await assert.rejects(add("evil.tar"), /would be written outside of the destination/);
  });

  it("refuses relative symlinks that climb out of the destination", async () => {
    await writeFile(
      join(src, "evil.tar"),
      await makeTar([{ name: "up", type: "symlink", linkname: "../../../../etc" }]),
    );
    await assert.rejects(add("evil.tar"), /would be written outside of the destination/);
  });

  it("resolves an absolute symlink from the archive against the extraction directory", async () => {
    await writeFile(
      join(src, "tricky.tar"),
      await makeTar([
        { name: "etc", type: "symlink", linkname: "/" },
        { name: "etc/owned.txt", body: "inside" },
      ]),
    );
    await add("tricky.tar", "/x/");
    assert.equal(await readFile(join(dest, "x/owned.txt"), "utf8"), "inside");
    assert.equal(await readlink(join(dest, "x/etc")), "/");
  });
});

describe("isTarHeader", () => {
  it("accepts a real header and rejects zero blocks and text", async () => {
    const header = (await makeTar([{ name: "a", body: "x" }])).subarray(0, 512);
    assert.ok(isTarHeader(header));
    assert.ok(!isTarHeader(Buffer.alloc(512)));
    assert.ok(!isTarHeader(Buffer.alloc(512, "a")));
  });
});
