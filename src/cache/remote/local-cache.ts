// A build cache in an OCI image layout directory. Written so a reader always sees a valid layout:
// blobs first (each by temp file and rename), index.json replaced atomically last, then blobs no tag
// reaches any more are pruned.
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { ContentStore } from "../../content/types.js";
import { type Digest, digestHex, isDigest, sha256Digest } from "../../oci/digest.js";
import {
  type Descriptor,
  type ImageIndex,
  isIndexMediaType,
  isManifestMediaType,
  MediaType,
} from "../../oci/spec.js";
import { type ReadCacheManifest, readCacheManifest, type WrittenCacheManifest } from "./cache-manifest.js";
import { CacheNotFoundError, type CacheSource } from "./cache-source.js";

const REF_NAME = "org.opencontainers.image.ref.name";
const TEMP_PREFIX = ".tmp-";

function blobPath(dir: string, digest: Digest): string {
  return join(dir, "blobs", "sha256", digestHex(digest));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function writeAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = join(path, "..", `${TEMP_PREFIX}${randomBytes(6).toString("hex")}`);
  await writeFile(tmp, data, { flush: true });
  await rename(tmp, path);
}

async function readIndex(dir: string): Promise<ImageIndex | undefined> {
  const text = await readFile(join(dir, "index.json"), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const index = JSON.parse(text) as ImageIndex;
    return Array.isArray(index.manifests) ? index : undefined;
  } catch {
    return undefined;
  }
}

export async function writeCacheToLocal(
  dir: string,
  tag: string,
  written: WrittenCacheManifest,
  store: ContentStore,
): Promise<void> {
  const blobsDir = join(dir, "blobs", "sha256");
  await mkdir(blobsDir, { recursive: true });
  if (!(await exists(join(dir, "oci-layout"))))
    await writeAtomic(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  for (const desc of [...written.blobs, written.root]) {
    const path = blobPath(dir, desc.digest);
    if (await exists(path)) continue;
    const tmp = join(blobsDir, `${TEMP_PREFIX}${randomBytes(6).toString("hex")}`);
    await pipeline(store.read(desc.digest), createWriteStream(tmp, { flush: true }));
    await rename(tmp, path);
  }
  const previous = await readIndex(dir);
  const kept = (previous?.manifests ?? []).filter((m) => m.annotations?.[REF_NAME] !== tag);
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [...kept, { ...written.root, annotations: { [REF_NAME]: tag } }],
  };
  await writeAtomic(join(dir, "index.json"), JSON.stringify(index));
  await pruneUnreferenced(dir, index);
}

/** Deletes blobs (and leftover temp files) that no manifest in the index reaches. */
async function pruneUnreferenced(dir: string, index: ImageIndex): Promise<void> {
  const reached = new Set<string>();
  const walk = async (desc: Descriptor): Promise<void> => {
    if (!isDigest(desc.digest) || reached.has(desc.digest)) return;
    reached.add(desc.digest);
    if (!isIndexMediaType(desc.mediaType) && !isManifestMediaType(desc.mediaType)) return;
    const doc = JSON.parse(await readFile(blobPath(dir, desc.digest), "utf8")) as {
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    for (const d of [...(doc.manifests ?? []), ...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])])
      await walk(d);
  };
  for (const m of index.manifests) await walk(m);
  const blobsDir = join(dir, "blobs", "sha256");
  for (const name of await readdir(blobsDir)) {
    if (!reached.has(`sha256:${name}`)) await rm(join(blobsDir, name), { force: true });
  }
}

export class LocalCacheSource implements CacheSource {
  constructor(
    private readonly dir: string,
    private readonly tag: string | undefined,
    private readonly digest: string | undefined,
  ) {}

  get name(): string {
    return `${this.dir} (local)`;
  }

  private async readBytes(desc: Descriptor): Promise<Buffer> {
    const data = await readFile(blobPath(this.dir, desc.digest));
    if (sha256Digest(data) !== desc.digest)
      throw new Error(`blob ${desc.digest} in ${this.dir} does not match its digest`);
    return data;
  }

  async load(): Promise<ReadCacheManifest> {
    if (!(await exists(join(this.dir, "index.json"))))
      throw new CacheNotFoundError(`no index.json in ${this.dir}`);
    const index = await readIndex(this.dir);
    if (!index) throw new Error(`${this.dir}/index.json is not an OCI layout index`);
    const wanted = this.tag ?? "latest";
    const root = this.digest
      ? index.manifests.find((m) => m.digest === this.digest)
      : (index.manifests.find((m) => m.annotations?.[REF_NAME] === wanted) ??
        (this.tag === undefined && index.manifests.length === 1 ? index.manifests[0] : undefined));
    if (!root)
      throw new CacheNotFoundError(
        `${this.dir}/index.json has no ${this.digest ? `manifest ${this.digest}` : `tag ${wanted}`}`,
      );
    return readCacheManifest(await this.readBytes(root), { readBytes: (d) => this.readBytes(d) });
  }

  async fetchBlob(desc: Descriptor, store: ContentStore): Promise<void> {
    if (await store.has(desc.digest)) return;
    await store.write(createReadStream(blobPath(this.dir, desc.digest)), {
      expected: desc.digest,
      expectedSize: desc.size,
    });
  }
}
