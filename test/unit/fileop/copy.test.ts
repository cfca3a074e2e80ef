import assert from "node:assert/strict";
import { lstat, mkdir, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FileOpError } from "../../../src/worker/fileop/errors.js";
import { executeFileAction } from "../../../src/worker/fileop/execute.js";
import { copyAction } from "./copy-helpers.js";
import { readTree, TempDirs, writeTree } from "./tree-fixtures.js";

describe("copy action", () => {
  const temp = new TempDirs();
  let src: string;
  let dest: string;
  const run = (fields: Parameters<typeof copyAction>[0]) =>
    executeFileAction(copyAction(fields), { srcRoot: src, destRoot: dest });
  const text = (p: string) => readFile(join(dest, p), "utf8");

  beforeEach(async () => {
    src = await temp.make();
    dest = await temp.make();
    await writeTree(src, {
      "file.txt": { file: "hello", mode: 0o640, uid: 1234, gid: 2345, mtime: 1_600_000_000 },
      "dir/a.txt": "a",
      "dir/sub/b.txt": "b",
      "dir/sub/c.log": "c",
      "etc/passwd": "root:x:0:0::/root:/bin/sh\n",
    });
  });
  afterEach(() => temp.cleanup());

  describe("destinations", () => {
    it("copies a file to a destination path that does not exist under that name", async () => {
      await run({ src: "file.txt", dest: "/out/renamed.txt" });
      assert.equal(await text("out/renamed.txt"), "hello");
    });

    it("treats a destination ending in / as a directory", async () => {
      await run({ src: "file.txt", dest: "/out/" });
      assert.equal(await text("out/file.txt"), "hello");
    });

    it("copies a file into an existing directory under its own name", async () => {
      await mkdir(join(dest, "existing"));
      await run({ src: "file.txt", dest: "/existing" });
      assert.equal(await text("existing/file.txt"), "hello");
    });

    it("copies a directory's contents, not the directory itself", async () => {
      await run({ src: "dir", dest: "/app" });
      assert.equal(await text("app/a.txt"), "a");
      assert.equal(await text("app/sub/b.txt"), "b");
    });

    it("copies the directory itself into an existing directory without dirCopyContents", async () => {
      await mkdir(join(dest, "app"));
      await run({ src: "dir", dest: "/app", dirCopyContents: false });
      assert.equal(await text("app/dir/a.txt"), "a");
    });

    it("creates missing destination parents with mode 0755 owned by root", async () => {
      await run({ src: "file.txt", dest: "/x/y/z/" });
      const st = await stat(join(dest, "x/y"));
      assert.equal(st.mode & 0o7777, 0o755);
      assert.equal(st.uid, 0);
    });

    it("fails when the destination's parent is missing and createDestPath is off", async () => {
      await assert.rejects(
        run({ src: "file.txt", dest: "/nope/file.txt", createDestPath: false }),
        (err: Error) => err instanceof FileOpError && /\/nope does not exist/.test(err.message),
      );
    });

    it("resolves a symlinked destination inside the destination root", async () => {
      await writeTree(dest, { escape: { symlink: "/../../../../tmp-kiln-outside" } });
      await run({ src: "file.txt", dest: "/escape/" });
      assert.equal(await text("tmp-kiln-outside/file.txt"), "hello");
    });
  });

  describe("sources", () => {
    it("copies every wildcard match", async () => {
      await run({ src: "dir/sub/*", dest: "/out/" });
      assert.deepEqual(Object.keys(await readTree(join(dest, "out"))).sort(), [".", "b.txt", "c.log"]);
    });

    it("names the pattern when a wildcard matches nothing", async () => {
      await assert.rejects(run({ src: "dir/*.nothing", dest: "/out/" }), (err: Error) => {
        assert.ok(err instanceof FileOpError);
        assert.equal(err.kind, "not-found");
        assert.match(err.message, /"\/dir\/\*\.nothing": not found/);
        return true;
      });
    });

    it("copies nothing and succeeds when an empty wildcard is allowed", async () => {
      await run({ src: "dir/*.nothing", dest: "/out/", allowEmptyWildcard: true });
      await assert.rejects(lstat(join(dest, "out")));
    });

    it("names a missing source", async () => {
      await assert.rejects(run({ src: "missing.txt", dest: "/out/" }), /"\/missing.txt": not found/);
    });

    it("requires a directory destination for several sources", async () => {
      await assert.rejects(
        run({ src: "dir/sub/*", dest: "/out" }),
        /destination must be a directory and end with a \//,
      );
    });

    it("copies the target of a symlink source when following symlinks", async () => {
      await writeTree(src, { "link.txt": { symlink: "file.txt" } });
      await run({ src: "link.txt", dest: "/out/" });
      const st = await lstat(join(dest, "out/link.txt"));
      assert.ok(st.isFile());
      assert.equal(await text("out/link.txt"), "hello");
    });

    it("copies a symlink source as a symlink when not following symlinks", async () => {
      await writeTree(src, { "link.txt": { symlink: "file.txt" } });
      await run({ src: "link.txt", dest: "/out/", followSymlink: false });
      assert.equal(await readlink(join(dest, "out/link.txt")), "file.txt");
    });

    it("resolves a symlink source that climbs out of the root inside the root", async () => {
      await writeTree(src, { sneaky: { symlink: "../../../../../../etc/passwd" } });
      await run({ src: "sneaky", dest: "/out/passwd" });
      assert.equal(await text("out/passwd"), "root:x:0:0::/root:/bin/sh\n");
    });

    it("resolves an absolute symlink source against the source root", async () => {
      await writeTree(src, { abs: { symlink: "/etc/passwd" } });
      await run({ src: "abs", dest: "/out/passwd" });
      assert.equal(await text("out/passwd"), "root:x:0:0::/root:/bin/sh\n");
    });
  });

  describe("trees", () => {
    it("copies symlinks inside a tree as symlinks with their targets unchanged", async () => {
      await writeTree(src, { "dir/abs": { symlink: "/etc/passwd" }, "dir/rel": { symlink: "../file.txt" } });
      await run({ src: "dir", dest: "/app/" });
      assert.equal(await readlink(join(dest, "app/abs")), "/etc/passwd");
      assert.equal(await readlink(join(dest, "app/rel")), "../file.txt");
    });

    it("keeps hard links within the copied files linked", async () => {
      await writeTree(src, { "dir/hard": { hardlink: "dir/a.txt" } });
      await run({ src: "dir", dest: "/app/" });
      const [a, b] = await Promise.all([lstat(join(dest, "app/a.txt")), lstat(join(dest, "app/hard"))]);
      assert.equal(a.ino, b.ino);
      assert.equal(a.nlink, 2);
    });

    it("keeps modes, owners and modification times of copied files and directories", async () => {
      await writeTree(src, { "tree/x": { file: "x", mode: 0o751, uid: 7, gid: 8, mtime: 1_500_000_000 } });
      await writeTree(src, { "tree/d": { dir: true, mode: 0o700, uid: 9, gid: 10, mtime: 1_400_000_000 } });
      await run({ src: "tree", dest: "/copy/" });
      const x = await lstat(join(dest, "copy/x"));
      assert.deepEqual([x.mode & 0o7777, x.uid, x.gid, x.mtimeMs], [0o751, 7, 8, 1_500_000_000_000]);
      const d = await lstat(join(dest, "copy/d"));
      assert.deepEqual([d.mode & 0o7777, d.uid, d.gid, d.mtimeMs], [0o700, 9, 10, 1_400_000_000_000]);
    });

    it("copies a read-only source directory with its contents", async () => {
      await writeTree(src, { "ro/f": "f", ro: { dir: true, mode: 0o555 } });
      await run({ src: "ro", dest: "/copy/", dirCopyContents: false });
      assert.equal(await text("copy/ro/f"), "f");
      assert.equal((await stat(join(dest, "copy/ro"))).mode & 0o7777, 0o555);
    });

    it("keeps an existing destination directory's own mode and owner", async () => {
      await writeTree(dest, { app: { dir: true, mode: 0o711, uid: 33 } });
      await run({ src: "dir", dest: "/app/" });
      const st = await stat(join(dest, "app"));
      assert.deepEqual([st.mode & 0o7777, st.uid], [0o711, 33]);
      assert.equal(await text("app/a.txt"), "a");
    });

    it("replaces an existing file without writing through its other hard links", async () => {
      await writeTree(dest, { "app/a.txt": "old", keep: { hardlink: "app/a.txt" } });
      await run({ src: "dir", dest: "/app/" });
      assert.equal(await text("app/a.txt"), "a");
      assert.equal(await text("keep"), "old");
    });

    it("refuses to replace a directory with a file", async () => {
      await mkdir(join(dest, "app/a.txt"), { recursive: true });
      await assert.rejects(
        run({ src: "dir", dest: "/app/" }),
        /cannot replace to directory \/app\/a.txt with file/,
      );
    });

    it("refuses to copy a directory onto a file", async () => {
      await writeTree(dest, { "app/sub": "a file" });
      await assert.rejects(run({ src: "dir", dest: "/app/" }), /cannot copy to non-directory: \/app\/sub/);
    });

    it("replaces whatever is in the way when alwaysReplaceExistingDestPaths is set", async () => {
      await mkdir(join(dest, "app/a.txt"), { recursive: true });
      await writeTree(dest, { "app/sub": "a file" });
      await run({ src: "dir", dest: "/app/", alwaysReplaceExistingDestPaths: true });
      assert.equal(await text("app/a.txt"), "a");
      assert.equal(await text("app/sub/b.txt"), "b");
    });
  });

  describe("ownership", () => {
    it("keeps the source owner when no owner is given", async () => {
      await run({ src: "file.txt", dest: "/out/" });
      const st = await stat(join(dest, "out/file.txt"));
      assert.deepEqual([st.uid, st.gid], [1234, 2345]);
    });

    it("sets user and group to a numeric user id", async () => {
      await run({ src: "dir", dest: "/out/", owner: { user: { id: 1001 } } });
      for (const p of ["out/a.txt", "out/sub", "out/sub/b.txt"]) {
        const st = await lstat(join(dest, p));
        assert.deepEqual([st.uid, st.gid], [1001, 1001], p);
      }
    });

    it("looks up user and group names in the destination's /etc/passwd and /etc/group", async () => {
      await writeTree(dest, {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1500:1600::/home/app:/bin/sh\n",
        "etc/group": "root:x:0:\nstaff:x:50:\n",
      });
      await run({ src: "file.txt", dest: "/out/", owner: { user: { name: "app" } } });
      let st = await stat(join(dest, "out/file.txt"));
      assert.deepEqual([st.uid, st.gid], [1500, 1600]);
      await run({
        src: "file.txt",
        dest: "/out2/",
        owner: { user: { name: "app" }, group: { name: "staff" } },
      });
      st = await stat(join(dest, "out2/file.txt"));
      assert.deepEqual([st.uid, st.gid], [1500, 50]);
    });

    it("names an unknown user", async () => {
      await writeTree(dest, { "etc/passwd": "root:x:0:0::/root:/bin/sh\n" });
      await assert.rejects(
        run({ src: "file.txt", dest: "/out/", owner: { user: { name: "ghost" } } }),
        /unable to find user ghost: no matching entries in passwd file/,
      );
    });

    it("owns the destination parents it creates by the given owner", async () => {
      await run({ src: "file.txt", dest: "/new/dir/", owner: { user: { id: 42 }, group: { id: 43 } } });
      const st = await stat(join(dest, "new/dir"));
      assert.deepEqual([st.uid, st.gid], [42, 43]);
    });
  });

  describe("modes", () => {
    it("sets a numeric mode on copied files and directories", async () => {
      await run({ src: "dir", dest: "/out/", mode: 0o700 });
      assert.equal((await stat(join(dest, "out/a.txt"))).mode & 0o7777, 0o700);
      assert.equal((await stat(join(dest, "out/sub"))).mode & 0o7777, 0o700);
    });

    it("applies a symbolic mode relative to each source mode", async () => {
      await writeTree(src, { "m/x": { file: "x", mode: 0o664 }, "m/y": { file: "y", mode: 0o600 } });
      await run({ src: "m", dest: "/out/", modeSymbolic: "u+x,g-w" });
      assert.equal((await stat(join(dest, "out/x"))).mode & 0o7777, 0o744);
      assert.equal((await stat(join(dest, "out/y"))).mode & 0o7777, 0o700);
    });

    it("gives directories search permission with X but not plain files", async () => {
      await writeTree(src, { "m/x": { file: "x", mode: 0o600 }, "m/d": { dir: true, mode: 0o700 } });
      await run({ src: "m", dest: "/out/", modeSymbolic: "a=rX" });
      assert.equal((await stat(join(dest, "out/x"))).mode & 0o7777, 0o444);
      assert.equal((await stat(join(dest, "out/d"))).mode & 0o7777, 0o555);
    });
  });

  describe("timestamps", () => {
    it("sets every copied entry and created parent to the given timestamp", async () => {
      await run({ src: "dir", dest: "/made/out/", timestamp: 1_234_567_890 });
      for (const p of ["made", "made/out", "made/out/a.txt", "made/out/sub", "made/out/sub/b.txt"])
        assert.equal((await lstat(join(dest, p))).mtimeMs, 1_234_567_890_000, p);
    });
  });

  describe("include and exclude patterns", () => {
    it("copies only paths matching include patterns", async () => {
      await run({ src: "dir", dest: "/out/", includePatterns: ["sub/*.txt"] });
      assert.deepEqual(Object.keys(await readTree(join(dest, "out"))).sort(), [".", "sub", "sub/b.txt"]);
    });

    it("leaves out paths matching exclude patterns (COPY --exclude)", async () => {
      await run({ src: "dir", dest: "/out/", excludePatterns: ["**/*.log"] });
      assert.deepEqual(Object.keys(await readTree(join(dest, "out"))).sort(), [
        ".",
        "a.txt",
        "sub",
        "sub/b.txt",
      ]);
    });

    it("brings back exceptions of an excluded directory", async () => {
      await run({ src: "dir", dest: "/out/", excludePatterns: ["sub", "!sub/c.log"] });
      assert.deepEqual(Object.keys(await readTree(join(dest, "out"))).sort(), [
        ".",
        "a.txt",
        "sub",
        "sub/c.log",
      ]);
    });

    it("applies patterns to each wildcard match relative to that match", async () => {
      await run({ src: "d*", dest: "/out/", excludePatterns: ["a.txt"] });
      assert.deepEqual(Object.keys(await readTree(join(dest, "out"))).sort(), [
        ".",
        "sub",
        "sub/b.txt",
        "sub/c.log",
      ]);
    });
  });

  describe("--parents", () => {
    it("keeps the source's parent directories", async () => {
      await writeTree(src, { "pkg/one/go.mod": "1", "pkg/two/go.mod": "2", "pkg/two/main.go": "m" });
      await run({ src: "pkg/*/go.mod", dest: "/out/", parents: true });
      assert.deepEqual(Object.keys(await readTree(join(dest, "out"))).sort(), [
        ".",
        "pkg",
        "pkg/one",
        "pkg/one/go.mod",
        "pkg/two",
        "pkg/two/go.mod",
      ]);
    });

    it("keeps only the parents below a /./ pivot", async () => {
      await writeTree(src, { "pkg/one/go.mod": "1", "pkg/two/go.mod": "2" });
      await run({ src: "pkg/./*/go.mod", dest: "/out/", parents: true });
      assert.equal(await text("out/one/go.mod"), "1");
      assert.equal(await text("out/two/go.mod"), "2");
    });
  });

  it("copies 5,000 small files completely", async () => {
    const tree: Record<string, string> = {};
    for (let d = 0; d < 50; d++) for (let f = 0; f < 100; f++) tree[`big/d${d}/f${f}`] = `${d}-${f}`;
    await writeTree(src, tree);
    await run({ src: "big", dest: "/out/" });
    const copied = await readTree(join(dest, "out"));
    assert.equal(Object.keys(copied).length, 5051);
    assert.equal(await text("out/d49/f99"), "49-99");
  }).timeout(30_000);

  it("fails with a usable message when no source root is given", async () => {
    await assert.rejects(
      executeFileAction(copyAction({ src: "a", dest: "/b" }), { destRoot: dest }),
      /copy needs a source filesystem/,
    );
  });

  it("writes a regular file even over a dangling symlink in the destination", async () => {
    await writeTree(dest, { "out/file.txt": { symlink: "/nowhere" } });
    await run({ src: "dir", dest: "/out/" });
    await writeFile(join(src, "dir/file.txt"), "data");
    await run({ src: "dir", dest: "/out/" });
    assert.ok((await lstat(join(dest, "out/file.txt"))).isFile());
  });
});

describe("copy action with required paths", () => {
  const temp = new TempDirs();
  afterEach(() => temp.cleanup());

  it("fails naming a required path that is missing from the source", async () => {
    const src = await temp.make();
    const dest = await temp.make();
    await writeTree(src, { "a/x.txt": "x" });
    const action = copyAction({
      src: "/",
      dest: "/out/",
      includePatterns: ["a/y.txt"],
      requiredPaths: ["/a/y.txt"],
    });
    await assert.rejects(
      executeFileAction(action, { srcRoot: src, destRoot: dest }),
      /"\/a\/y.txt": not found/,
    );
    await executeFileAction(
      { ...action, includePatterns: ["a/x.txt"], requiredPaths: ["/a/x.txt"] },
      { srcRoot: src, destRoot: dest },
    );
    assert.equal(await readFile(join(dest, "out/a/x.txt"), "utf8"), "x");
  });
});
