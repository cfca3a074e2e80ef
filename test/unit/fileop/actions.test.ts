import assert from "node:assert/strict";
import { lstat, readFile, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import type { FileAction } from "../../../src/llb/ops.js";
import { executeFileAction } from "../../../src/worker/fileop/execute.js";
import { TempDirs, writeTree } from "./tree-fixtures.js";

describe("mkdir, mkfile, rm and symlink actions", () => {
  const temp = new TempDirs();
  let root: string;
  const run = (action: FileAction) => executeFileAction(action, { destRoot: root });
  const exists = (p: string) =>
    lstat(join(root, p)).then(
      () => true,
      () => false,
    );

  beforeEach(async () => {
    root = await temp.make();
    await writeTree(root, {
      "etc/passwd": "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/var/www:/bin/sh\n",
      "etc/group": "root:x:0:\nweb:x:34:\n",
      "data/a.txt": "a",
      "data/b.txt": "b",
      "data/keep.md": "k",
    });
  });
  afterEach(() => temp.cleanup());

  describe("mkdir", () => {
    it("creates a directory with exactly the given mode, whatever the umask", async () => {
      const old = process.umask(0o077);
      try {
        await run({ type: "mkdir", path: "/d", mode: 0o775, makeParents: false });
      } finally {
        process.umask(old);
      }
      assert.equal((await stat(join(root, "d"))).mode & 0o7777, 0o775);
    });

    it("creates parents with the same mode, owner and timestamp when makeParents is set", async () => {
      await run({
        type: "mkdir",
        path: "/x/y/z",
        mode: 0o750,
        makeParents: true,
        owner: { user: { name: "web" } },
        timestamp: 1_000_000_000,
      });
      for (const p of ["x", "x/y", "x/y/z"]) {
        const st = await stat(join(root, p));
        assert.deepEqual(
          [st.mode & 0o7777, st.uid, st.gid, st.mtimeMs],
          [0o750, 33, 34, 1_000_000_000_000],
          p,
        );
      }
    });

    it("fails on a missing parent without makeParents", async () => {
      await assert.rejects(
        run({ type: "mkdir", path: "/no/such", mode: 0o755, makeParents: false }),
        /mkdir \/no\/such: no such file or directory/,
      );
    });

    it("leaves an existing directory alone", async () => {
      await run({ type: "mkdir", path: "/data", mode: 0o700, makeParents: false });
      assert.equal(await readFile(join(root, "data/a.txt"), "utf8"), "a");
    });
  });

  describe("mkfile", () => {
    it("writes base64 data with mode, owner and timestamp", async () => {
      await run({
        type: "mkfile",
        path: "/data/new.sh",
        mode: 0o755,
        data: Buffer.from("#!/bin/sh\n").toString("base64"),
        owner: { user: { id: 5 }, group: { id: 6 } },
        timestamp: 1_100_000_000,
      });
      const st = await stat(join(root, "data/new.sh"));
      assert.deepEqual([st.mode & 0o7777, st.uid, st.gid, st.mtimeMs], [0o755, 5, 6, 1_100_000_000_000]);
      assert.equal(await readFile(join(root, "data/new.sh"), "utf8"), "#!/bin/sh\n");
    });

    it("writes through a symlink only inside the root", async () => {
      await writeTree(root, { "data/ln": { symlink: "/../../../../inside.txt" } });
      await run({ type: "mkfile", path: "/data/ln", mode: 0o644, data: Buffer.from("x").toString("base64") });
      assert.equal(await readFile(join(root, "inside.txt"), "utf8"), "x");
    });
  });

  describe("rm", () => {
    it("removes a directory recursively", async () => {
      await run({ type: "rm", path: "/data", allowNotFound: false, allowWildcard: false });
      assert.equal(await exists("data"), false);
    });

    it("removes a symlink, not its target", async () => {
      await writeTree(root, { ln: { symlink: "data" } });
      await run({ type: "rm", path: "/ln", allowNotFound: false, allowWildcard: false });
      assert.equal(await exists("ln"), false);
      assert.equal(await exists("data/a.txt"), true);
    });

    it("fails on a missing path unless allowNotFound", async () => {
      await assert.rejects(
        run({ type: "rm", path: "/nope", allowNotFound: false, allowWildcard: false }),
        /rm \/nope: no such file or directory/,
      );
      await run({ type: "rm", path: "/nope", allowNotFound: true, allowWildcard: false });
    });

    it("removes every wildcard match and nothing else", async () => {
      await run({ type: "rm", path: "/data/*.txt", allowNotFound: false, allowWildcard: true });
      assert.equal(await exists("data/a.txt"), false);
      assert.equal(await exists("data/b.txt"), false);
      assert.equal(await exists("data/keep.md"), true);
    });

    it("stays inside the root when the path climbs out", async () => {
      await run({ type: "rm", path: "/../../data/a.txt", allowNotFound: false, allowWildcard: false });
      assert.equal(await exists("data/a.txt"), false);
    });
  });

  describe("symlink", () => {
    it("creates a link with the target stored as given", async () => {
      await run({
        type: "symlink",
        oldpath: "../etc/passwd",
        newpath: "/data/pw",
        owner: { user: { id: 9 } },
      });
      assert.equal(await readlink(join(root, "data/pw")), "../etc/passwd");
      assert.equal((await lstat(join(root, "data/pw"))).uid, 9);
    });

    it("fails when the new path exists", async () => {
      await assert.rejects(
        run({ type: "symlink", oldpath: "x", newpath: "/data/a.txt" }),
        /symlink .*\/data\/a.txt: file exists/,
      );
    });
  });
});
