// The metadata database's view of lazily applied snapshots: a snapshot whose layer is applied only
// when first read is recorded at once (size unknown), and recorded again with its size once filled.
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { MetadataDb } from "../../src/cache/metadata-db.js";
import { RecordedSnapshotter } from "../../src/engine/recorded-snapshotter.js";
import { CopySnapshotter } from "../../src/snapshot/copy.js";
import { makeTempDir, removeTempDir, streamBytes, tarOf } from "../unit/snapshot/fixtures.js";

describe("RecordedSnapshotter with lazily applied layers (copy snapshotter)", () => {
  let dir: string;
  let db: MetadataDb;
  beforeEach(async () => {
    dir = await makeTempDir("kiln-recorded-");
    db = MetadataDb.open(dir);
  });
  afterEach(async () => {
    db.close();
    await removeTempDir(dir);
  });

  it("records the snapshot's size once its layer has been applied, for du", async () => {
    const snapshotter = new RecordedSnapshotter(CopySnapshotter.at(`${dir}/snapshots`), db);
    const bytes = await streamBytes(await tarOf([{ name: "data", content: "x".repeat(20_000) }]));
    const lazy = await snapshotter.applyLayerLazily(undefined, () => Readable.from([bytes]), {
      createdAt: 1_700_000_000_000,
    });
    assert.equal(db.snapshots.get(lazy.id)?.size, 0, "unknown until filled");
    await snapshotter.withMounted(lazy.id, async () => {});
    const recorded = db.snapshots.get(lazy.id);
    assert.ok((recorded?.size ?? 0) >= 20_000, `recorded size ${recorded?.size}`);
    assert.equal(recorded?.createdAt, 1_700_000_000_000, "keeps the layer's own time");
  });
});
