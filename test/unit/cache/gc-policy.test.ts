import assert from "node:assert/strict";
import fc from "fast-check";
import {
  defaultGcPolicy,
  defaultGcSpace,
  diskSpaceBytes,
  keepBytesFor,
  parseBytes,
  parseDiskSpace,
  parseDurationMs,
} from "../../../src/cache/gc-policy.js";

const GB = 1e9;

describe("GC policy", () => {
  describe("defaults", () => {
    it("has BuildKit's four rules: easily re-made data after 48 h over 512 MB, 60 days, unshared, all", () => {
      const rules = defaultGcPolicy({ totalBytes: 50 * GB, freeBytes: 20 * GB });
      assert.equal(rules.length, 4);
      assert.deepEqual(rules[0], {
        filters: ["type==source.local", "type==exec.cachemount", "type==source.git.checkout"],
        keepDurationMs: 48 * 3600_000,
        maxUsedSpace: { bytes: 512e6 },
      });
      assert.equal(rules[1]!.keepDurationMs, 60 * 24 * 3600_000);
      assert.equal(rules[1]!.all, undefined);
      assert.equal(rules[2]!.keepDurationMs, undefined);
      assert.equal(rules[2]!.all, undefined);
      assert.equal(rules[3]!.all, true);
      for (const r of rules.slice(1)) {
        assert.deepEqual(r.reservedSpace, { percentage: 10 });
        assert.deepEqual(r.minFreeSpace, { percentage: 20 });
        assert.deepEqual(r.maxUsedSpace, { percentage: 80 });
      }
    });

    it("caps reserved space at 10 GB and max used space at 100 GB on big disks", () => {
      const space = defaultGcSpace({ totalBytes: 2000 * GB, freeBytes: 1000 * GB });
      assert.deepEqual(space.reservedSpace, { bytes: 10 * GB });
      assert.deepEqual(space.maxUsedSpace, { bytes: 100 * GB });
      assert.deepEqual(space.minFreeSpace, { percentage: 20 });
    });

    it("uses configured space limits instead of the defaults when any is given", () => {
      const rules = defaultGcPolicy(
        { totalBytes: 50 * GB, freeBytes: 1 },
        { maxUsedSpace: { bytes: 5 * GB } },
      );
      assert.deepEqual(rules[3], { all: true, maxUsedSpace: { bytes: 5 * GB } });
    });
  });

  describe("diskSpaceBytes", () => {
    it("turns a percentage into bytes of the disk and falls back to 2 GB when the size is unknown", () => {
      assert.equal(diskSpaceBytes({ percentage: 10 }, { totalBytes: 1000, freeBytes: 0 }), 100);
      assert.equal(diskSpaceBytes({ bytes: 7 }, { totalBytes: 1000, freeBytes: 0 }), 7);
      assert.equal(diskSpaceBytes({ percentage: 10 }, { totalBytes: 0, freeBytes: 0 }), 2e9);
      assert.equal(diskSpaceBytes(undefined, { totalBytes: 1000, freeBytes: 0 }), 0);
    });
  });

  describe("keepBytesFor", () => {
    it("means no cap when no limit is set", () => {
      assert.equal(keepBytesFor(1000, 0, {}), undefined);
    });

    it("keeps max-used bytes when there is free space enough", () => {
      assert.equal(keepBytesFor(1000, 500, { maxUsedSpace: 600, minFreeSpace: 100 }), 600);
    });

    it("lowers the cap to make the missing free space available", () => {
      assert.equal(keepBytesFor(1000, 50, { maxUsedSpace: 900, minFreeSpace: 250 }), 800);
      assert.equal(keepBytesFor(1000, 50, { minFreeSpace: 250 }), 800);
    });

    it("keeps everything when only min-free is set and it is met", () => {
      assert.equal(keepBytesFor(1000, 500, { minFreeSpace: 100 }), 1000);
    });

    it("never goes below the reserved space", () => {
      assert.equal(keepBytesFor(1000, 0, { maxUsedSpace: 10, minFreeSpace: 5000, reservedSpace: 300 }), 300);
    });

    it("always yields a cap between reserved space and the larger of max-used and current usage", () => {
      fc.assert(
        fc.property(
          fc.nat(1e12),
          fc.nat(1e12),
          fc.nat(1e12),
          fc.nat(1e12),
          fc.nat(1e12),
          (total, free, reserved, maxUsed, minFree) => {
            const keep = keepBytesFor(total, free, {
              reservedSpace: reserved,
              maxUsedSpace: maxUsed,
              minFreeSpace: minFree,
            });
            if (reserved === 0 && maxUsed === 0 && minFree === 0) return keep === undefined;
            return keep !== undefined && keep >= reserved && keep <= Math.max(reserved, maxUsed, total);
          },
        ),
      );
    });
  });

  describe("parsing", () => {
    it("reads Go-style durations and bare seconds", () => {
      assert.equal(parseDurationMs("48h"), 48 * 3600_000);
      assert.equal(parseDurationMs("2h30m"), 2.5 * 3600_000);
      assert.equal(parseDurationMs("1.5s"), 1500);
      assert.equal(parseDurationMs("250ms"), 250);
      assert.equal(parseDurationMs("172800"), 172800_000);
    });

    it("rejects durations it cannot read, with an example", () => {
      for (const bad of ["", "5 days", "h", "10x", "3d"])
        assert.throws(() => parseDurationMs(bad), /e\.g\. 24h/);
    });

    it("reads sizes with binary units, case-insensitively, and percentages", () => {
      assert.equal(parseBytes("128mb"), 128 * 1024 ** 2);
      assert.equal(parseBytes("2GiB"), 2 * 1024 ** 3);
      assert.equal(parseBytes("10GB"), 10 * 1024 ** 3);
      assert.equal(parseBytes("512"), 512);
      assert.equal(parseBytes("1.5k"), 1536);
      assert.deepEqual(parseDiskSpace("20%"), { percentage: 20 });
      assert.deepEqual(parseDiskSpace("1g"), { bytes: 1024 ** 3 });
      assert.throws(() => parseDiskSpace("lots"), /invalid size "lots"/);
    });
  });
});
