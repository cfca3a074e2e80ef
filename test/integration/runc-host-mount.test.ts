import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { mountAll, mountPointsUnder, unmountAllUnder } from "../../src/snapshot/mount.js";

describe("host mounts for containers", function () {
  this.timeout(30_000);
  let base: string;
  before(async function () {
    if (process.getuid?.() !== 0) this.skip();
    base = await mkdtemp("/tmp/kiln-host-mount-");
  });
  after(async () => {
    if (!base) return;
    await unmountAllUnder(base);
    await rm(base, { recursive: true, force: true });
  });

  it("mounts an overlay whose layer list is longer than a page, from relative paths", async () => {
    // A deep common parent makes 60 lower dirs well over the kernel's 4096-byte limit for mount data,
    // as a snapshotter's long state path does.
    const layers = path.join(base, "s".repeat(120), "t".repeat(120));
    const lowers: string[] = [];
    for (let i = 0; i < 60; i++) {
      const d = path.join(layers, String(i), "fs");
      await mkdir(d, { recursive: true });
      await writeFile(path.join(d, `f${i}`), `${i}\n`);
      lowers.push(d);
    }
    assert.ok(lowers.join(":").length > 4096);
    const upper = path.join(layers, "upper");
    const work = path.join(layers, "work");
    const target = path.join(base, "long");
    for (const d of [upper, work, target]) await mkdir(d, { recursive: true });
    await mountAll(
      [
        {
          type: "overlay",
          source: "overlay",
          options: [`lowerdir=${lowers.join(":")}`, `upperdir=${upper}`, `workdir=${work}`],
        },
      ],
      target,
    );
    try {
      assert.equal(await readFile(path.join(target, "f0"), "utf8"), "0\n");
      assert.equal(await readFile(path.join(target, "f59"), "utf8"), "59\n");
    } finally {
      await unmountAllUnder(target);
    }
    assert.deepEqual(await mountPointsUnder(target), []);
  });

  it("unmounts stacked mounts at one target, newest first", async () => {
    const target = path.join(base, "stacked");
    await mkdir(target, { recursive: true });
    await mountAll(
      [
        { type: "tmpfs", source: "tmpfs", options: ["size=1m"] },
        { type: "tmpfs", source: "tmpfs", options: ["size=2m"] },
      ],
      target,
    );
    assert.equal((await mountPointsUnder(target)).length, 2);
    await unmountAllUnder(target);
    assert.deepEqual(await mountPointsUnder(target), []);
  });

  it("undoes earlier mounts when a later one fails", async () => {
    const target = path.join(base, "partial");
    await mkdir(target, { recursive: true });
    await assert.rejects(
      mountAll(
        [
          { type: "tmpfs", source: "tmpfs", options: [] },
          { type: "bind", source: path.join(base, "does-not-exist"), options: ["rbind"] },
        ],
        target,
      ),
      /mount .* failed/,
    );
    assert.deepEqual(await mountPointsUnder(target), []);
  });
});
