import assert from "node:assert/strict";
import { parseUsageFilters, type UsageRecord } from "../../../src/cache/usage-filter.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";

function record(over: Partial<UsageRecord>): UsageRecord {
  return {
    id: "snap-1" as SnapshotId,
    parents: [],
    recordType: "regular",
    description: "mount / from exec /bin/sh -c make",
    size: 100,
    createdAt: 0,
    usageCount: 0,
    mutable: false,
    inUse: false,
    shared: false,
    cacheKeys: [],
    ...over,
  };
}

describe("usage filters", () => {
  it("match everything when there are none", () => {
    assert.equal(parseUsageFilters([]).matches(record({})), true);
  });

  it("select either of several values of the same key", () => {
    const f = parseUsageFilters(["type==source.local", "type==exec.cachemount"]);
    assert.equal(f.matches(record({ recordType: "exec.cachemount" })), true);
    assert.equal(f.matches(record({ recordType: "source.local" })), true);
    assert.equal(f.matches(record({ recordType: "regular" })), false);
  });

  it("require conditions on different keys together, given in one string or several", () => {
    for (const filters of [["type=regular,private"], ["type=regular", "private"]]) {
      const f = parseUsageFilters(filters);
      assert.equal(f.matches(record({ shared: false })), true);
      assert.equal(f.matches(record({ shared: true })), false);
      assert.equal(f.matches(record({ recordType: "frontend" })), false);
    }
  });

  it("exclude with != and match descriptions by regular expression with ~=", () => {
    const f = parseUsageFilters(["type!=exec.cachemount", "description~=^mount / from exec"]);
    assert.equal(f.matches(record({})), true);
    assert.equal(f.matches(record({ recordType: "exec.cachemount" })), false);
    assert.equal(f.matches(record({ description: "pulled from alpine" })), false);
  });

  it("select by id, parent and boolean states", () => {
    const r = record({ parents: ["base" as SnapshotId], inUse: true, mutable: true, shared: true });
    assert.equal(parseUsageFilters(["id=snap-1"]).matches(r), true);
    assert.equal(parseUsageFilters(["id==other"]).matches(r), false);
    assert.equal(parseUsageFilters(["parents==base"]).matches(r), true);
    assert.equal(parseUsageFilters(["inuse"]).matches(r), true);
    assert.equal(parseUsageFilters(["mutable=true"]).matches(r), true);
    assert.equal(parseUsageFilters(["immutable"]).matches(r), false);
    assert.equal(parseUsageFilters(["shared=false"]).matches(r), false);
    assert.equal(parseUsageFilters(["private"]).matches(r), false);
  });

  it("turn until=<duration> into a keep duration without restricting the match", () => {
    const f = parseUsageFilters(["until=24h"]);
    assert.equal(f.keepDurationMs, 24 * 3600_000);
    assert.equal(f.matches(record({})), true);
  });

  it("reject unknown keys and bad values with the list of valid keys", () => {
    assert.throws(() => parseUsageFilters(["colour=red"]), /unknown filter "colour=red": filter on id, type/);
    assert.throws(() => parseUsageFilters(["shared=maybe"]), /expected true or false/);
    assert.throws(() => parseUsageFilters(["description~=("]), /not a regular expression/);
    assert.throws(() => parseUsageFilters(["type"]), /expected type=<value>/);
    assert.throws(() => parseUsageFilters(["until=soon"]), /invalid duration/);
  });
});
