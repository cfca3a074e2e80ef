// The behaviour every snapshotter must have, run against overlayfs and copy alike: real mounts,
// real diffs, layers applied in a fresh snapshotter and compared file by file.
import assert from "node:assert/strict";
import {
  chmod,
  chown,
  link,
  lutimes,
  mkdir,
  readdir,
  readFile,
  rm,
  symlink,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { makeNode, writeXattr } from "../../src/archive/file-attrs.js";
import { CopySnapshotter } from "../../src/snapshot/copy.js";
import type { DirectorySnapshotter } from "../../src/snapshot/directory-snapshotter.js";
import { mountAll, unmountAllUnder } from "../../src/snapshot/mount.js";
import { OverlaySnapshotter } from "../../src/snapshot/overlay.js";
import type { SnapshotId, SnapshotInfo } from "../../src/snapshot/types.js";
import {
  makeTempDir,
  mountsUnder,
  removeTempDir,
  streamBytes,
  tarListing,
  tarOf,
  treeManifest,
} from "../unit/snapshot/fixtures.js";

const kinds: [string, (stateDir: string) => DirectorySnapshotter][] = [
  ["overlayfs", (d) => OverlaySnapshotter.at(d)],
  ["copy", (d) => CopySnapshotter.at(d)],
];

/** A committed snapshot made by writing into a prepared one. */
async function snapshotOf(
  s: DirectorySnapshotter,
  parent: SnapshotId | undefined,
  write: (dir: string) => Promise<void>,
): Promise<SnapshotInfo> {
  const active = await s.prepare(parent);
  await s.withMounted(active.id, write);
  return s.commit(active.id);
}

function manifestOf(s: DirectorySnapshotter, id: SnapshotId): Promise<string[]> {
  return s.withMounted(id, treeManifest);
}

/** Applies the diffs of `chain` (base first) in `fresh` and returns the top snapshot. */
async function replay(
  from: DirectorySnapshotter,
  chain: SnapshotId[],
  fresh: DirectorySnapshotter,
): Promise<SnapshotId> {
  let parent: SnapshotId | undefined;
  for (const id of chain) parent = (await fresh.applyLayer(parent, from.diff(id))).id;
  return parent!;
}

for (const [kind, make] of kinds) {
  describe(`${kind} snapshotter`, function () {
    this.timeout(60_000);
    let stateDir: string;
    let freshDir: string;
    let s: DirectorySnapshotter;
    let fresh: DirectorySnapshotter;

    beforeEach(async () => {
      stateDir = await makeTempDir("snap");
      freshDir = await makeTempDir("snap-fresh");
      s = make(stateDir);
      fresh = make(freshDir);
    });

    afterEach(async () => {
      const left = [...(await mountsUnder(stateDir)), ...(await mountsUnder(freshDir))];
      // Undone before the check fails, so a failing test leaves nothing mounted or on disk.
      await unmountAllUnder(stateDir);
      await unmountAllUnder(freshDir);
      await removeTempDir(stateDir);
      await removeTempDir(freshDir);
      assert.deepEqual(left, [], "a test left mounts behind");
    });

    it("lives under <stateDir>/snapshots/<name>", () => {
      assert.equal(s.root, join(stateDir, "snapshots", kind));
    });

    it("prepares an empty writable tree when there is no parent", async () => {
      const active = await s.prepare();
      const names = await s.withMounted(active.id, async (dir) => {
        await writeFile(join(dir, "hello"), "hi");
        return readdir(dir);
      });
      assert.deepEqual(names, ["hello"]);
      assert.equal((await s.stat(active.id))?.kind, "active");
    });

    it("shows a committed snapshot read-only", async () => {
      const base = await snapshotOf(s, undefined, (d) => writeFile(join(d, "f"), "data"));
      assert.equal(base.kind, "committed");
      await s.withMounted(base.id, async (dir) => {
        assert.equal(await readFile(join(dir, "f"), "utf8"), "data");
        await assert.rejects(writeFile(join(dir, "g"), "x"), { code: "EROFS" });
      });
    });

    it("shows a parent's files in a child, and keeps the child's changes out of the parent", async () => {
      const base = await snapshotOf(s, undefined, (d) => writeFile(join(d, "f"), "base"));
      const child = await snapshotOf(s, base.id, async (d) => {
        assert.equal(await readFile(join(d, "f"), "utf8"), "base");
        await writeFile(join(d, "f"), "child");
        await writeFile(join(d, "g"), "new");
      });
      assert.deepEqual(await s.withMounted(base.id, (d) => readdir(d)), ["f"]);
      assert.equal(await s.withMounted(base.id, (d) => readFile(join(d, "f"), "utf8")), "base");
      assert.equal(await s.withMounted(child.id, (d) => readFile(join(d, "f"), "utf8")), "child");
      assert.equal(child.parent, base.id);
    });

    it("records a parent's file deleted in a child as a .wh. whiteout in the diff", async () => {
      const base = await snapshotOf(s, undefined, async (d) => {
        await mkdir(join(d, "etc"));
        await writeFile(join(d, "etc/keep"), "k");
        await writeFile(join(d, "etc/gone"), "g");
      });
      const child = await snapshotOf(s, base.id, (d) => unlink(join(d, "etc/gone")));
      const listing = await tarListing(s.diff(child.id));
      assert.deepEqual(listing, ["directory etc/", "file etc/.wh.gone"]);
    });

    it("reproduces a tree with deletions when its diffs are applied in a fresh snapshotter", async () => {
      const base = await snapshotOf(s, undefined, async (d) => {
        await mkdir(join(d, "a/b"), { recursive: true });
        await writeFile(join(d, "a/b/file"), "1");
        await writeFile(join(d, "a/other"), "2");
        await writeFile(join(d, "top"), "3");
      });
      const child = await snapshotOf(s, base.id, async (d) => {
        await rm(join(d, "a/b"), { recursive: true });
        await unlink(join(d, "top"));
        await writeFile(join(d, "a/added"), "4");
      });
      const top = await replay(s, [base.id, child.id], fresh);
      const applied = await manifestOf(fresh, top);
      assert.deepEqual(applied, await manifestOf(s, child.id));
      assert.deepEqual(
        applied.map((l) => l.split(" ")[0]),
        ["a", "a/added", "a/other"],
      );
    });

    it("reproduces a directory replaced wholesale, hiding everything the parent had in it", async () => {
      const base = await snapshotOf(s, undefined, async (d) => {
        await mkdir(join(d, "cache/sub"), { recursive: true });
        await writeFile(join(d, "cache/x"), "x");
        await writeFile(join(d, "cache/sub/y"), "y");
      });
      const child = await snapshotOf(s, base.id, async (d) => {
        await rm(join(d, "cache"), { recursive: true });
        await mkdir(join(d, "cache"));
        await writeFile(join(d, "cache/z"), "z");
      });
      const top = await replay(s, [base.id, child.id], fresh);
      assert.deepEqual(await fresh.withMounted(top, (d) => readdir(join(d, "cache"))), ["z"]);
      assert.deepEqual(await manifestOf(fresh, top), await manifestOf(s, child.id));
    });

    it("keeps hard links, symlinks, modes, owners, xattrs, devices, fifos and times through diff and apply", async () => {
      const capability = Buffer.from("0100000200200000000000000000000000000000", "hex");
      const base = await snapshotOf(s, undefined, async (d) => {
        await mkdir(join(d, "bin"));
        await writeFile(join(d, "bin/tool"), "#!/bin/sh\n");
      });
      const child = await snapshotOf(s, base.id, async (d) => {
        await writeFile(join(d, "bin/tool"), "#!/bin/sh\necho changed\n");
        await chown(join(d, "bin/tool"), 1234, 567);
        await chmod(join(d, "bin/tool"), 0o4755);
        await writeXattr(join(d, "bin/tool"), "security.capability", capability);
        await writeXattr(join(d, "bin/tool"), "user.note", Buffer.from("kept"));
        await writeXattr(join(d, "bin/tool"), "trusted.kiln", Buffer.from([0, 0xff, 0x80]));
        await link(join(d, "bin/tool"), join(d, "bin/tool-alias"));
        await symlink("/etc/passwd", join(d, "bin/abs-link"));
        await symlink("tool", join(d, "bin/rel-link"));
        await mkdir(join(d, "tmp"), { mode: 0o777 });
        await chmod(join(d, "tmp"), 0o1777);
        await writeFile(join(d, "secret"), "s");
        await chmod(join(d, "secret"), 0o000);
        await makeNode(join(d, "null"), "char-device", 1, 3);
        await makeNode(join(d, "loop"), "block-device", 7, 1);
        await makeNode(join(d, "pipe"), "fifo");
        await utimes(join(d, "secret"), 1_600_000_000, 1_600_000_000);
        await lutimes(join(d, "bin/rel-link"), 1_500_000_000, 1_500_000_000);
      });
      const top = await replay(s, [base.id, child.id], fresh);
      const expected = await manifestOf(s, child.id);
      assert.deepEqual(await manifestOf(fresh, top), expected);
      const tool = expected.find((l) => l.startsWith("bin/tool "))!;
      assert.match(tool, /^bin\/tool file 4755 1234:567 /);
      assert.match(tool, new RegExp(`security.capability=${capability.toString("hex")}`));
      assert.match(tool, /trusted.kiln=00ff80/);
      assert.ok(
        expected.some(
          (l) => l.startsWith("bin/tool-alias file 4755 1234:567") && l.includes("linked-to=bin/tool"),
        ),
      );
      assert.ok(expected.some((l) => l.startsWith("null char 644") && l.includes(" 1:3 ")));
      assert.ok(expected.some((l) => l.startsWith("secret file 0 0:0 t=1600000000")));
    });

    it("writes the same diff bytes every time, entries in path order", async () => {
      const base = await snapshotOf(s, undefined, async (d) => {
        for (const n of ["b", "a", "c", "B", "a.d", "a-d"]) await writeFile(join(d, n), n);
        await mkdir(join(d, "a.dir"));
        await writeFile(join(d, "a.dir/z"), "z");
      });
      const first = await streamBytes(s.diff(base.id));
      const second = await streamBytes(s.diff(base.id));
      assert.ok(first.equals(second));
      assert.deepEqual(await tarListing(s.diff(base.id)), [
        "file B",
        "file a",
        "file a-d",
        "file a.d",
        "directory a.dir/",
        "file a.dir/z",
        "file b",
        "file c",
      ]);
    });

    it("refuses to remove a snapshot that is another's parent, and removes it once it is not", async () => {
      const base = await snapshotOf(s, undefined, (d) => writeFile(join(d, "f"), "1"));
      const child = await snapshotOf(s, base.id, (d) => writeFile(join(d, "g"), "2"));
      await assert.rejects(s.remove(base.id), /is the parent of/);
      await s.remove(child.id);
      await s.remove(base.id);
      assert.deepEqual(await s.list(), []);
      assert.deepEqual((await readdir(s.root)).sort(), ["mounts", "tmp"]);
    });

    it("unmounts after withMounted even when the callback throws", async () => {
      const base = await snapshotOf(s, undefined, (d) => writeFile(join(d, "f"), "1"));
      await assert.rejects(
        s.withMounted(base.id, async () => {
          throw new Error("callback failed");
        }),
        /callback failed/,
      );
      assert.deepEqual(await mountsUnder(s.root), []);
      assert.deepEqual(await readdir(join(s.root, "mounts")), []);
    });

    it("leaves no snapshot and no mount behind when a layer is rejected", async () => {
      const base = await snapshotOf(s, undefined, (d) => writeFile(join(d, "f"), "1"));
      const layer = await tarOf([
        { name: "ok", content: "fine" },
        { name: "../escape", content: "bad" },
      ]);
      await assert.rejects(s.applyLayer(base.id, layer), /"\.\.\/escape"/);
      assert.deepEqual(
        (await s.list()).map((r) => r.id),
        [base.id],
      );
      assert.deepEqual(await mountsUnder(s.root), []);
    });

    it("applies a layer with whiteouts and an opaque marker onto its parent", async () => {
      const base = await fresh.applyLayer(
        undefined,
        await tarOf([
          { name: "d/", type: "directory" },
          { name: "d/old", content: "old" },
          { name: "d/sub/", type: "directory" },
          { name: "d/sub/deep", content: "deep" },
          { name: "e/", type: "directory" },
          { name: "e/x", content: "x" },
          { name: "e/y", content: "y" },
        ]),
      );
      const top = await fresh.applyLayer(
        base.id,
        await tarOf([
          { name: "d/", type: "directory" },
          { name: "d/.wh..wh..opq" },
          { name: "d/new", content: "new" },
          { name: "e/", type: "directory" },
          { name: "e/.wh.x" },
        ]),
      );
      assert.deepEqual(await fresh.withMounted(top.id, (d) => readdir(join(d, "d"))), ["new"]);
      assert.deepEqual(await fresh.withMounted(top.id, (d) => readdir(join(d, "e"))), ["y"]);
      assert.deepEqual((await fresh.withMounted(base.id, (d) => readdir(join(d, "d")))).sort(), [
        "old",
        "sub",
      ]);
    });

    it("applies a hard link to a file that a lower layer holds", async () => {
      const base = await fresh.applyLayer(
        undefined,
        await tarOf([{ name: "data", content: "shared", mode: 0o600 }]),
      );
      const top = await fresh.applyLayer(
        base.id,
        await tarOf([{ name: "alias", type: "link", linkname: "data" }]),
      );
      const manifest = await manifestOf(fresh, top.id);
      assert.ok(
        manifest.some((l) => l.startsWith("alias file 600") && l.includes("linked-to=alias")),
        manifest.join("\n"),
      );
      assert.equal(await fresh.withMounted(top.id, (d) => readFile(join(d, "alias"), "utf8")), "shared");
    });

    it("rejects a truncated layer and keeps no snapshot of it", async () => {
      const whole = await streamBytes(await tarOf([{ name: "big", content: "x".repeat(5000) }]));
      const truncated = Readable.from([whole.subarray(0, 2048)]);
      await assert.rejects(fresh.applyLayer(undefined, truncated), /Unexpected end of data/);
      assert.deepEqual(await fresh.list(), []);
    });

    /** A deferred layer of `specs` that counts how often it is opened. */
    async function deferred(specs: Parameters<typeof tarOf>[0]) {
      const bytes = await streamBytes(await tarOf(specs));
      const layer = Object.assign(
        () => {
          layer.opened++;
          return Readable.from([bytes]);
        },
        { opened: 0 },
      );
      return layer;
    }

    it("applies a lazy layer only when the snapshot is first read, then reads it like any other", async () => {
      const base = await fresh.applyLayer(undefined, await tarOf([{ name: "base", content: "b" }]));
      const layer = await deferred([{ name: "top", content: "t" }]);
      const lazy = await fresh.applyLayerLazily(base.id, layer);
      assert.equal((await fresh.stat(lazy.id))?.kind, "committed");
      assert.equal(layer.opened, 0);
      assert.equal((await readdir(fresh.root)).includes(lazy.id), false, "nothing on disk yet");
      const child = await snapshotOf(fresh, lazy.id, (d) => writeFile(join(d, "child"), "c"));
      assert.equal(layer.opened, 1);
      assert.deepEqual((await fresh.withMounted(child.id, (d) => readdir(d))).sort(), [
        "base",
        "child",
        "top",
      ]);
      assert.deepEqual(await tarListing(fresh.diff(lazy.id)), ["file top"]);
      assert.equal(layer.opened, 1, "filled once");
    });

    it("fills a chain of lazy snapshots base first when the top one is read", async () => {
      const low = await fresh.applyLayerLazily(undefined, await deferred([{ name: "low", content: "l" }]));
      const high = await fresh.applyLayerLazily(low.id, await deferred([{ name: "high", content: "h" }]));
      assert.deepEqual((await fresh.withMounted(high.id, (d) => readdir(d))).sort(), ["high", "low"]);
      assert.equal((await fresh.stat(low.id))?.lazy, undefined);
    });

    it("fails a read of a lazy snapshot whose layer fails, and keeps it lazy with no files", async () => {
      const whole = await streamBytes(await tarOf([{ name: "big", content: "x".repeat(5000) }]));
      const lazy = await fresh.applyLayerLazily(undefined, () => Readable.from([whole.subarray(0, 2048)]));
      await assert.rejects(fresh.view(lazy.id), /Unexpected end of data/);
      assert.equal((await fresh.stat(lazy.id))?.lazy, true);
      assert.deepEqual(await readdir(join(fresh.root, "tmp")), []);
      assert.equal((await readdir(fresh.root)).includes(lazy.id), false);
    });

    it("leaves no trace of a lazy snapshot never read to a new instance (after a restart)", async () => {
      const lazy = await fresh.applyLayerLazily(undefined, await deferred([{ name: "f", content: "f" }]));
      const restarted = make(freshDir);
      await restarted.cleanup(() => true);
      assert.equal(await restarted.stat(lazy.id), undefined);
    });

    it("cleans up after a crash: active snapshots not kept are removed and no mounts remain", async () => {
      const committed = await snapshotOf(s, undefined, (d) => writeFile(join(d, "f"), "1"));
      const kept = await s.prepare(committed.id);
      const orphan = await s.prepare(committed.id);
      // What a crash mid-build leaves: the orphan still mounted, and a half-made snapshot in tmp/.
      const stale = join(s.root, "mounts", "stale-mount");
      await mkdir(stale, { recursive: true });
      await mountAll(orphan.mounts, stale);
      await mkdir(join(s.root, "tmp", "new-0123456789ab", "fs"), { recursive: true });
      assert.equal((await mountsUnder(s.root)).length, 1);

      const restarted = make(stateDir);
      await restarted.cleanup((id) => id === kept.id);
      assert.deepEqual(await mountsUnder(s.root), []);
      const left = (await restarted.list()).map((r) => r.id).sort();
      assert.deepEqual(left, [committed.id, kept.id].sort());
      assert.deepEqual(await readdir(join(s.root, "tmp")), []);
      assert.deepEqual(await readdir(join(s.root, "mounts")), []);
      assert.equal(await restarted.withMounted(kept.id, (d) => readFile(join(d, "f"), "utf8")), "1");
    });
  });
}
