import assert from "node:assert/strict";
import type { UsageRecord } from "../../../src/cache/usage-filter.js";
import type { BuildOutcome, EngineInfo } from "../../../src/engine/types.js";
import type { Digest } from "../../../src/oci/digest.js";
import {
  infoFromWire,
  infoToWire,
  outcomeFromWire,
  outcomeToWire,
  progressFromWire,
  progressToWire,
  usageFromWire,
  usageToWire,
} from "../../../src/server/build-wire.js";
import { type BuildServerMessage, engineServiceClient } from "../../../src/server/engine-proto.js";
import type { SnapshotId } from "../../../src/snapshot/types.js";
import type { ProgressEvent } from "../../../src/solver/progress.js";

const V = `sha256:${"a".repeat(64)}` as Digest;

/** Encodes and decodes a server message with the service's own (de)serialisers. */
function overTheWire(message: BuildServerMessage): BuildServerMessage {
  const build = engineServiceClient().service.Build!;
  return build.responseDeserialize(build.responseSerialize(message)) as BuildServerMessage;
}

describe("engine API message conversions", () => {
  it("round-trips every kind of progress event, keeping unset optional fields unset", () => {
    const events: ProgressEvent[] = [
      { type: "vertex", vertex: V, name: "[1/2] RUN x", inputs: [V], started: 1_700_000_000_123 },
      {
        type: "vertex",
        vertex: V,
        name: "n",
        inputs: [],
        started: 1,
        completed: 2,
        cached: true,
        error: "boom",
        progressGroup: "g",
      },
      { type: "log", vertex: V, stream: 1, data: Buffer.from([0, 255, 10]), timestamp: 5 },
      { type: "status", vertex: V, id: "sha256:layer", current: 3, timestamp: 9 },
      {
        type: "status",
        vertex: V,
        id: "x",
        name: "n",
        current: 3,
        total: 4,
        started: 1,
        completed: 2,
        timestamp: 9,
      },
      { type: "warning", message: "m" },
      {
        type: "warning",
        vertex: V,
        message: "m",
        detail: "d",
        url: "https://x",
        location: { file: "Dockerfile", line: 7 },
      },
    ];
    for (const e of events) {
      const back = overTheWire({ progress: progressToWire(e) });
      assert.ok("progress" in back);
      assert.deepEqual(progressFromWire(back.progress), e);
    }
  });

  it("round-trips an outcome with its metadata and optional fields", () => {
    const outcomes: BuildOutcome[] = [
      { warnings: [], metadata: {} },
      {
        warnings: ["w"],
        metadata: { "containerimage.digest": "sha256:x", nested: { a: [1, 2] } },
        imageId: "sha256:y",
        report: "r",
        failed: "f",
      },
    ];
    for (const o of outcomes) {
      const back = overTheWire({ result: { outcome: outcomeToWire(o) } });
      assert.ok("result" in back && "outcome" in back.result);
      assert.deepEqual(outcomeFromWire(back.result.outcome), o);
    }
  });

  it("round-trips engine info and usage records through their proto messages", () => {
    const service = engineServiceClient().service;
    const info: EngineInfo = {
      version: "1",
      commit: "c",
      nativePlatforms: [{ os: "linux", architecture: "amd64" }],
      emulatedPlatforms: [{ os: "linux", architecture: "arm", variant: "v7" }],
      snapshotter: "overlayfs",
      gcPolicy: [{ keepBytes: 10 }, { all: true, filters: ["type==source.local"], keepDurationMs: 5 }],
    };
    const wire = service.Info!.responseDeserialize(service.Info!.responseSerialize(infoToWire(info)));
    assert.deepEqual(infoFromWire(wire as ReturnType<typeof infoToWire>), info);
    const record: UsageRecord = {
      id: "s1" as SnapshotId,
      parents: ["s0" as SnapshotId],
      recordType: "regular",
      description: "d",
      size: 5_000_000_000,
      createdAt: 1,
      lastUsedAt: 2,
      usageCount: 3,
      mutable: true,
      inUse: false,
      shared: true,
      cacheKeys: ["k"],
    };
    const du = service.DiskUsage!.responseDeserialize(
      service.DiskUsage!.responseSerialize({ records: [usageToWire(record)] }),
    ) as {
      records: ReturnType<typeof usageToWire>[];
    };
    assert.deepEqual(du.records.map(usageFromWire), [record]);
  });
});
