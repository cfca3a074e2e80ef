// What only the overlayfs snapshotter does: overlay's on-disk whiteout and opaque formats, deep
// chains past the kernel's mount-option limit, and choosing between overlayfs and copy.
import assert from "node:assert/strict";
import { lstat, mkdir, readdir, readFile, readlink, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deviceNumbers, readXattr } from "../../src/archive/file-attrs.js";
import { chooseSnapshotter, probeOverlay } from "../../src/snapshot/choose.js";
import { mountAll, mountSpec, unmountAllUnder } from "../../src/snapshot/mount.js";
import { OverlaySnapshotter } from "../../src/snapshot/overlay.js";
import type { SnapshotId } from "../../src/snapshot/types.js";
import { makeTempDir, mountsUnder, removeTempDir, tarListing, tarOf } from "../unit/snapshot/fixtures.js";

describe("overlayfs snapshotter on disk", function () {
  this.timeout(120_000);
  let stateDir: string;
  let s: OverlaySnapshotter;

  beforeEach(async () => {
    stateDir = await makeTempDir("overlay");
    s = OverlaySnapshotter.at(stateDir);
  });

  afterEach(async () => {
    const left = await mountsUnder(stateDir);
    await unmountAllUnder(stateDir);
    await removeTempDir(stateDir);
    assert.deepEqual(left, [], "a test left mounts behind");
  });

  async function committed(parent: SnapshotId | undefined, write: (dir: string) => Promise<void>) {
    const a = await s.prepare(parent);
    await s.withMounted(a.id, write);
    return s.commit(a.id);
  }

  it("stacks the parent chain nearest first as lower dirs of a prepared snapshot", async () => {
    const a = await committed(undefined, (d) => writeFile(join(d, "a"), "a"));
    const b = await committed(a.id, (d) => writeFile(join(d, "b"), "b"));
    const c = await s.prepare(b.id);
    assert.equal(c.mounts.length, 1);
    const overlay = c.mounts[0]!;
    assert.equal(overlay.type, "overlay");
    const fs = (id: string) => join(s.root, id, "fs");
    assert.ok(overlay.options.includes(`lowerdir=${fs(b.id)}:${fs(a.id)}`));
    assert.ok(overlay.options.includes(`upperdir=${fs(c.id)}`));
    assert.ok(overlay.options.includes(`workdir=${join(s.root, c.id, "work")}`));
    assert.deepEqual(await s.view(a.id), [{ type: "bind", source: fs(a.id), options: ["rbind", "ro"] }]);
  });

  it("keeps a deleted lower file as a 0/0 character device in the upper dir", async () => {
    const base = await committed(undefined, (d) => writeFile(join(d, "gone"), "x"));
    const child = await committed(base.id, (d) => unlink(join(d, "gone")));
    const st = await lstat(join(s.root, child.id, "fs", "gone"));
    assert.ok(st.isCharacterDevice());
    assert.deepEqual(deviceNumbers(st.rdev), { major: 0, minor: 0 });
    assert.deepEqual(await tarListing(s.diff(child.id)), ["file .wh.gone"]);
  });

  it("marks a directory recreated over a lower one opaque and diffs it with .wh..wh..opq", async () => {
    const base = await committed(undefined, async (d) => {
      await mkdir(join(d, "d"));
      await writeFile(join(d, "d/old"), "old");
    });
    const child = await committed(base.id, async (d) => {
      await rm(join(d, "d"), { recursive: true });
      await mkdir(join(d, "d"));
      await writeFile(join(d, "d/new"), "new");
    });
    const opaque = await readXattr(join(s.root, child.id, "fs", "d"), "trusted.overlay.opaque");
    assert.equal(opaque?.toString(), "y");
    assert.deepEqual(await tarListing(s.diff(child.id)), [
      "directory d/",
      "file d/.wh..wh..opq",
      "file d/new",
    ]);
  });

  it("turns an applied opaque marker into an opaque upper dir, so the diff has it again", async () => {
    const base = await s.applyLayer(
      undefined,
      await tarOf([
        { name: "d/", type: "directory" },
        { name: "d/old", content: "old" },
      ]),
    );
    const top = await s.applyLayer(
      base.id,
      await tarOf([
        { name: "d/", type: "directory" },
        { name: "d/.wh..wh..opq" },
        { name: "d/new", content: "new" },
      ]),
    );
    assert.deepEqual(await tarListing(s.diff(top.id)), ["directory d/", "file d/.wh..wh..opq", "file d/new"]);
  });

  const upper = (id: string, ...path: string[]) => join(s.root, id, "fs", ...path);

  it("applies a whiteout of a lower file as a 0/0 character device in the upper dir", async () => {
    const base = await s.applyLayer(undefined, await tarOf([{ name: "gone", content: "x" }]));
    const top = await s.applyLayer(base.id, await tarOf([{ name: ".wh.gone" }]));
    const st = await lstat(upper(top.id, "gone"));
    assert.ok(st.isCharacterDevice());
    assert.deepEqual(deviceNumbers(st.rdev), { major: 0, minor: 0 });
    assert.deepEqual(await s.withMounted(top.id, (d) => readdir(d)), []);
  });

  it("writes no whiteout for a name that no lower layer has", async () => {
    const base = await s.applyLayer(undefined, await tarOf([{ name: "kept", content: "x" }]));
    const top = await s.applyLayer(base.id, await tarOf([{ name: ".wh.never-there" }]));
    assert.deepEqual(await readdir(upper(top.id)), []);
  });

  it("makes a directory recreated over a deleted lower one opaque", async () => {
    const base = await s.applyLayer(
      undefined,
      await tarOf([
        { name: "d/", type: "directory" },
        { name: "d/old", content: "old" },
      ]),
    );
    const top = await s.applyLayer(
      base.id,
      await tarOf([{ name: ".wh.d" }, { name: "d/", type: "directory" }, { name: "d/new", content: "new" }]),
    );
    assert.equal((await readXattr(upper(top.id, "d"), "trusted.overlay.opaque"))?.toString(), "y");
    assert.deepEqual(await s.withMounted(top.id, (d) => readdir(join(d, "d"))), ["new"]);
  });

  it("gives a lower directory's owner and mode to its copy in the upper dir when a layer writes below it", async () => {
    const base = await s.applyLayer(
      undefined,
      await tarOf([{ name: "etc/", type: "directory", mode: 0o710, uid: 7, gid: 8 }]),
    );
    const top = await s.applyLayer(base.id, await tarOf([{ name: "etc/conf", content: "c" }]));
    const st = await lstat(upper(top.id, "etc"));
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o710, 7, 8]);
  });

  it("writes through a symlink that a lower layer holds, as a mounted overlay would", async () => {
    const base = await s.applyLayer(
      undefined,
      await tarOf([
        { name: "usr/", type: "directory" },
        { name: "usr/lib/", type: "directory" },
        { name: "lib", type: "symlink", linkname: "usr/lib" },
      ]),
    );
    const top = await s.applyLayer(base.id, await tarOf([{ name: "lib/libx.so", content: "x" }]));
    assert.equal(await readFile(upper(top.id, "usr", "lib", "libx.so"), "utf8"), "x");
    assert.equal((await lstat(upper(top.id, "lib")).catch(() => undefined)) === undefined, true);
  });

  it("copies a lower symlink, not what it points at, when a layer hard-links to it", async () => {
    const base = await s.applyLayer(
      undefined,
      await tarOf([{ name: "outside", type: "symlink", linkname: "/etc/hostname" }]),
    );
    const top = await s.applyLayer(
      base.id,
      await tarOf([{ name: "alias", type: "link", linkname: "outside" }]),
    );
    assert.ok((await lstat(upper(top.id, "alias"))).isSymbolicLink());
    assert.equal(await readlink(upper(top.id, "alias")), "/etc/hostname");
  });

  it("hides every lower root entry the layer does not write for an opaque marker at the root", async () => {
    const base = await s.applyLayer(
      undefined,
      await tarOf([
        { name: "a", content: "a" },
        { name: "b/", type: "directory" },
      ]),
    );
    const top = await s.applyLayer(
      base.id,
      await tarOf([{ name: ".wh..wh..opq" }, { name: "c", content: "c" }]),
    );
    assert.deepEqual(await s.withMounted(top.id, (d) => readdir(d)), ["c"]);
  });

  it("mounts a 100-deep chain read-write and as a view, past the one-page mount option limit", async () => {
    let parent: SnapshotId | undefined;
    for (let i = 0; i < 100; i++) {
      parent = (await s.applyLayer(parent, await tarOf([{ name: `layer-${i}`, content: String(i) }]))).id;
    }
    const view = await s.view(parent!);
    assert.ok(view[0]!.options.join(",").length > 4096, "the absolute options should not fit in a page");
    const names = await s.withMounted(parent!, (d) => readdir(d));
    assert.equal(names.length, 100);
    const active = await s.prepare(parent);
    await s.withMounted(active.id, async (d) => {
      assert.equal(await readFile(join(d, "layer-0"), "utf8"), "0");
      await writeFile(join(d, "top"), "top");
    });
    const target = join(stateDir, "view-target");
    await mkdir(target);
    await mountAll(view, target);
    try {
      assert.equal(await readFile(join(target, "layer-99"), "utf8"), "99");
    } finally {
      await unmountAllUnder(target);
    }
  });
});

describe("choosing a snapshotter", function () {
  this.timeout(60_000);
  let stateDir: string;

  beforeEach(async () => {
    stateDir = await makeTempDir("choose");
  });

  afterEach(async () => {
    await unmountAllUnder(stateDir);
    await removeTempDir(stateDir);
  });

  it("picks overlayfs where a real overlay mount works", async () => {
    assert.deepEqual(await probeOverlay(stateDir), { ok: true });
    const s = await chooseSnapshotter(stateDir, "auto", {});
    assert.equal(s.name, "overlayfs");
    assert.deepEqual(await mountsUnder(stateDir), []);
  });

  it("takes KILN_SNAPSHOTTER over the probe when the preference is auto", async () => {
    assert.equal((await chooseSnapshotter(stateDir, "auto", { KILN_SNAPSHOTTER: "copy" })).name, "copy");
  });

  it("takes an explicit preference over KILN_SNAPSHOTTER", async () => {
    assert.equal(
      (await chooseSnapshotter(stateDir, "overlayfs", { KILN_SNAPSHOTTER: "copy" })).name,
      "overlayfs",
    );
    assert.equal((await chooseSnapshotter(stateDir, "copy", {})).name, "copy");
  });

  it("rejects an unknown KILN_SNAPSHOTTER by name", async () => {
    await assert.rejects(
      chooseSnapshotter(stateDir, "auto", { KILN_SNAPSHOTTER: "zfs" }),
      /KILN_SNAPSHOTTER="zfs"/,
    );
  });

  it("falls back to copy where overlayfs cannot stack (a state dir on an overlay mount)", async () => {
    const layers = join(stateDir, "layers");
    const merged = join(stateDir, "merged");
    for (const d of ["lower", "upper", "work"]) await mkdir(join(layers, d), { recursive: true });
    await mkdir(merged);
    await mountSpec(
      {
        type: "overlay",
        source: "overlay",
        options: [`lowerdir=${layers}/lower`, `upperdir=${layers}/upper`, `workdir=${layers}/work`],
      },
      merged,
    );
    const probe = await probeOverlay(merged);
    assert.equal(probe.ok, false);
    assert.equal((await chooseSnapshotter(merged, "auto", {})).name, "copy");
    await assert.rejects(chooseSnapshotter(merged, "overlayfs", {}), /overlayfs snapshotter does not work/);
  });
});
