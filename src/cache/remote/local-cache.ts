// A build cache in an OCI image layout directory on the client's disk, reached through the
// build's session (the engine may run elsewhere). Written so a reader always sees a valid layout:
// blobs first (each written atomically by the client), index.json replaced atomically last, then
// blobs no tag reaches any more are pruned.
import type { Readable } from "node:stream";
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
import type { CacheDirAccess } from "../../session/cache-dir.js";
import { type ReadCacheManifest, readCacheManifest, type WrittenCacheManifest } from "./cache-manifest.js";
import { CacheNotFoundError, type CacheSource } from "./cache-source.js";

const REF_NAME = "org.opencontainers.image.ref.name";
const BLOBS = "blobs/sha256";
/** index.json, manifests and configs are small; a larger one is not a cache this engine wrote. */
const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;

function blobPath(digest: Digest): string {
  return `${BLOBS}/${digestHex(digest)}`;
}

/** A client-side cache directory as the request names it, and the session that serves it. */
export interface LocalCacheDir {
  readonly files: CacheDirAccess;
  readonly dir: string;
}

async function readSmallFile({ files, dir }: LocalCacheDir, path: string): Promise<Buffer | undefined> {
  const stream = await files.read(dir, path);
  if (!stream) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_DOCUMENT_BYTES) {
      stream.destroy();
      throw new Error(`${dir}/${path} is larger than ${MAX_DOCUMENT_BYTES} bytes: not a cache document`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function writeFile({ files, dir }: LocalCacheDir, path: string, data: Readable | Buffer) {
  const { stream, done } = await files.openWrite(dir, path);
  if (Buffer.isBuffer(data)) stream.end(data);
  else await pipeline(data, stream);
  await done;
}

async function readIndex(at: LocalCacheDir): Promise<ImageIndex | undefined> {
  const data = await readSmallFile(at, "index.json");
  if (data === undefined) return undefined;
  try {
    const index = JSON.parse(data.toString("utf8")) as ImageIndex;
    return Array.isArray(index.manifests) ? index : undefined;
  } catch {
    return undefined;
  }
}

export async function writeCacheToLocal(
  at: LocalCacheDir,
  tag: string,
  written: WrittenCacheManifest,
  store: ContentStore,
): Promise<void> {
  const { files, dir } = at;
  if (!(await files.exists(dir, "oci-layout")))
    await writeFile(at, "oci-layout", Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  for (const desc of [...written.blobs, written.root]) {
    const path = blobPath(desc.digest);
    if (!(await files.exists(dir, path))) await writeFile(at, path, store.read(desc.digest));
  }
  const previous = await readIndex(at);
  const kept = (previous?.manifests ?? []).filter((m) => m.annotations?.[REF_NAME] !== tag);
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [...kept, { ...written.root, annotations: { [REF_NAME]: tag } }],
  };
  await writeFile(at, "index.json", Buffer.from(JSON.stringify(index)));
  await pruneUnreferenced(at, index);
}

/** Deletes blobs (and leftover temp files) that no manifest in the index reaches. */
async function pruneUnreferenced(at: LocalCacheDir, index: ImageIndex): Promise<void> {
  const reached = new Set<string>();
  const walk = async (desc: Descriptor): Promise<void> => {
    if (!isDigest(desc.digest) || reached.has(desc.digest)) return;
    reached.add(desc.digest);
    if (!isIndexMediaType(desc.mediaType) && !isManifestMediaType(desc.mediaType)) return;
    const data = await readSmallFile(at, blobPath(desc.digest));
    if (data === undefined) throw new Error(`${at.dir}: the index reaches ${desc.digest}, which is missing`);
    const doc = JSON.parse(data.toString("utf8")) as {
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    for (const d of [...(doc.manifests ?? []), ...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])])
      await walk(d);
  };
  for (const m of index.manifests) await walk(m);
  for (const name of await at.files.list(at.dir, BLOBS)) {
    if (!reached.has(`sha256:${name}`)) await at.files.remove(at.dir, `${BLOBS}/${name}`);
  }
}

export class LocalCacheSource implements CacheSource {
  constructor(
    private readonly at: LocalCacheDir,
    private readonly tag: string | undefined,
    private readonly digest: string | undefined,
  ) {}

  get name(): string {
    return `${this.at.dir} (local)`;
  }

  private get dir(): string {
    return this.at.dir;
  }

  private async readBytes(desc: Descriptor): Promise<Buffer> {
    const data = await readSmallFile(this.at, blobPath(desc.digest));
    if (data === undefined) throw new Error(`blob ${desc.digest} is missing from ${this.dir}`);
    if (sha256Digest(data) !== desc.digest)
      throw new Error(`blob ${desc.digest} in ${this.dir} does not match its digest`);
    return data;
  }

  async load(): Promise<ReadCacheManifest> {
    if (!(await this.at.files.exists(this.dir, "index.json")))
      throw new CacheNotFoundError(`no index.json in ${this.dir}`);
    const index = await readIndex(this.at);
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
    const data = await this.at.files.read(this.dir, blobPath(desc.digest));
    if (!data) throw new Error(`blob ${desc.digest} is missing from ${this.dir}`);
    await store.write(data, {
      expected: desc.digest,
      expectedSize: desc.size,
    });
  }
}
