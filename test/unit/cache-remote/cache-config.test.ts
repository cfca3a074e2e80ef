import assert from "node:assert/strict";
import {
  type CacheLayerBlob,
  decodeCacheConfig,
  encodeCacheConfig,
  UNCOMPRESSED_ANNOTATION,
} from "../../../src/cache/remote/cache-config.js";
import { type Digest, sha256Digest } from "../../../src/oci/digest.js";
import { type Descriptor, MediaType } from "../../../src/oci/spec.js";

const layer = (name: string, mediaType: string = MediaType.OciLayerGzip): CacheLayerBlob => ({
  blob: { mediaType, digest: sha256Digest(`blob ${name}`), size: name.length * 100 },
  diffId: sha256Digest(`diff ${name}`),
});
const key = (name: string) => sha256Digest(`key ${name}`);

describe("cache config", () => {
  const base = layer("base");
  const run1 = layer("run1");
  const run2 = layer("run2");
  const records = [
    { key: key("from"), inputKeys: [], outputs: [[base]] },
    { key: key("run1"), inputKeys: [`${key("from")}#0`], outputs: [[base, run1]] },
    { key: key("run2"), inputKeys: [`${key("run1")}#0`, "sel:abc"], outputs: [[base, run1, run2], []] },
  ];

  it("lists each layer and blob once, links keys to the keys they came from, and decodes back", () => {
    const { config, layers } = encodeCacheConfig(records, "2024-01-01T00:00:00Z");
    assert.equal(config.layers?.length, 3, "shared chain prefixes are one layer each");
    assert.deepEqual(
      layers.map((l) => l.digest),
      [base, run1, run2].map((l) => l.blob.digest),
    );
    assert.equal(layers[1]!.annotations?.[UNCOMPRESSED_ANNOTATION], run1.diffId);
    assert.deepEqual(config.records?.[1]?.inputs, [[{ link: 0 }]]);
    assert.deepEqual(config.records?.[2]?.inputs, [[{ link: 1 }], []], "a selection key links nowhere");
    assert.deepEqual(config.records?.[2]?.layers?.[1], {
      layer: -1,
      output: 1,
      createdAt: "2024-01-01T00:00:00Z",
    });

    const byDigest = new Map<Digest, Descriptor>(layers.map((l) => [l.digest, l]));
    const decoded = decodeCacheConfig(JSON.parse(JSON.stringify(config)), (d) => byDigest.get(d));
    assert.equal(decoded.size, 3);
    const r2 = decoded.get(key("run2"))!;
    assert.deepEqual(
      r2.outputs[0]!.map((l) => [l.blob.digest, l.diffId]),
      [base, run1, run2].map((l) => [l.blob.digest, l.diffId]),
    );
    assert.deepEqual(r2.outputs[1], [], "an output without layers is an empty filesystem");
  });

  it("carries each layer's creation time to the importer, and drops one that is not a time", () => {
    const timed = { ...layer("timed"), createdAt: "2026-01-02T03:04:05.678Z" };
    const bad = { ...layer("bad"), createdAt: "yesterday" };
    const { config, layers } = encodeCacheConfig([{ key: key("t"), inputKeys: [], outputs: [[timed, bad]] }]);
    const byDigest = new Map<Digest, Descriptor>(layers.map((l) => [l.digest, l]));
    const chain = decodeCacheConfig(JSON.parse(JSON.stringify(config)), (d) => byDigest.get(d)).get(key("t"))!
      .outputs[0]!;
    assert.equal(chain[0]!.createdAt, "2026-01-02T03:04:05.678Z");
    assert.equal(chain[1]!.createdAt, undefined);
  });

  it("records Docker media types as OCI ones, so images made from imported layers match", () => {
    const docker = layer("docker", MediaType.DockerLayerGzip);
    const { config, layers } = encodeCacheConfig([{ key: key("d"), inputKeys: [], outputs: [[docker]] }]);
    const byDigest = new Map<Digest, Descriptor>(layers.map((l) => [l.digest, l]));
    const decoded = decodeCacheConfig(config, (d) => byDigest.get(d));
    assert.equal(decoded.get(key("d"))!.outputs[0]![0]!.blob.mediaType, MediaType.OciLayerGzip);
  });

  it("drops only the records whose layers are undescribed or malformed", () => {
    const { config } = encodeCacheConfig(records);
    // Without per-layer annotations, the manifest must describe the blob; here nobody does.
    const bare = {
      layers: config.layers?.map(({ blob, parent }) => ({ blob, parent })),
      records: [
        ...(config.records ?? []),
        { digest: key("cycle"), layers: [{ layer: 3 }] },
        { digest: key("nowhere"), layers: [{ layer: 99 }] },
      ],
    };
    bare.layers?.push({ blob: run2.blob.digest, parent: 3 });
    const onlyBase = new Map<Digest, Descriptor>([
      [base.blob.digest, { ...base.blob, annotations: { [UNCOMPRESSED_ANNOTATION]: base.diffId } }],
    ]);
    const decoded = decodeCacheConfig(bare, (d) => onlyBase.get(d));
    assert.deepEqual([...decoded.keys()], [key("from")]);
    assert.throws(() => decodeCacheConfig("nope", () => undefined), /not a JSON object/);
  });
});
