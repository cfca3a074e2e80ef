// Writes images as OCI image layouts (a directory, or a tar of one) and as Docker archives that
// `docker load` takes: the layout plus manifest.json with RepoTags.

import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import type { ContentStore } from "../content/types.js";
import { type Digest, digestHex } from "../oci/digest.js";
import { formatImageRef, parseImageRef } from "../oci/image-ref.js";
import { type Descriptor, type ImageIndex, type ImageManifest, isIndexMediaType } from "../oci/spec.js";

/** Every descriptor reachable from `root` (index → manifests → config and layers), root first. */
export async function collectBlobs(store: ContentStore, root: Descriptor): Promise<Descriptor[]> {
  const out: Descriptor[] = [root];
  const doc = JSON.parse((await store.readBytes(root.digest)).toString("utf8")) as ImageIndex | ImageManifest;
  if (isIndexMediaType(root.mediaType) || "manifests" in doc) {
    for (const m of (doc as ImageIndex).manifests) out.push(...(await collectBlobs(store, m)));
  } else {
    const man = doc as ImageManifest;
    out.push(man.config, ...man.layers);
  }
  return out;
}

export interface ArchiveOptions {
  /** Image names (`-t`), recorded as ref annotations and, for Docker archives, RepoTags. */
  readonly names: readonly string[];
  /** Add manifest.json for `docker load`. */
  readonly docker: boolean;
}

function indexJson(root: Descriptor, names: readonly string[]): ImageIndex {
  const withNames = (n?: string): Descriptor => {
    if (!n) return root;
    const ref = parseImageRef(n);
    return {
      ...root,
      annotations: {
        ...root.annotations,
        "io.containerd.image.name": formatImageRef(ref),
        "org.opencontainers.image.ref.name": ref.tag ?? "latest",
      },
    };
  };
  return {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: names.length ? names.map(withNames) : [withNames()],
  };
}

/** Docker's manifest.json: one entry per platform image with its config, layers and tags. */
async function dockerManifestJson(store: ContentStore, root: Descriptor, names: readonly string[]) {
  const manifests: Descriptor[] = [];
  const doc = JSON.parse((await store.readBytes(root.digest)).toString("utf8"));
  if ("manifests" in doc) manifests.push(...(doc as ImageIndex).manifests);
  else manifests.push(root);
  const entries = [];
  for (const m of manifests) {
    const man = JSON.parse((await store.readBytes(m.digest)).toString("utf8")) as ImageManifest;
    entries.push({
      Config: `blobs/sha256/${digestHex(man.config.digest)}`,
      RepoTags: names.map((n) => {
        const r = parseImageRef(n);
        return `${r.registry === "docker.io" ? r.repository.replace(/^library\//, "") : `${r.registry}/${r.repository}`}:${r.tag ?? "latest"}`;
      }),
      Layers: man.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
    });
  }
  return entries;
}

/** Streams the layout as a tar to `out`. */
export async function writeImageArchive(
  store: ContentStore,
  root: Descriptor,
  out: Writable,
  opts: ArchiveOptions,
): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, out);
  const mtime = new Date(0);
  const addFile = (name: string, data: string) =>
    new Promise<void>((resolve, reject) =>
      pack.entry({ name, mtime, mode: 0o644 }, data, (err) => (err ? reject(err) : resolve())),
    );
  await addFile("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await addFile("index.json", JSON.stringify(indexJson(root, opts.names)));
  if (opts.docker)
    await addFile("manifest.json", JSON.stringify(await dockerManifestJson(store, root, opts.names)));
  const seen = new Set<Digest>();
  for (const d of await collectBlobs(store, root)) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    const info = await store.info(d.digest);
    if (!info) throw new Error(`blob ${d.digest} is missing from the content store`);
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry(
        { name: `blobs/sha256/${digestHex(d.digest)}`, size: info.size, mtime, mode: 0o644 },
        (err) => (err ? reject(err) : resolve()),
      );
      pipeline(store.read(d.digest), entry).catch(reject);
    });
  }
  pack.finalize();
  await done;
}

/** Writes the layout as a directory (`tar=false`), atomically per file, keeping blobs already there. */
export async function writeImageLayoutDir(
  store: ContentStore,
  root: Descriptor,
  dir: string,
  opts: ArchiveOptions,
): Promise<void> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const put = async (path: string, data: string) => {
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, data);
    await rename(tmp, path);
  };
  for (const d of await collectBlobs(store, root)) {
    const path = join(dir, "blobs", "sha256", digestHex(d.digest));
    const tmp = `${path}.tmp-${process.pid}`;
    await mkdir(dirname(path), { recursive: true });
    try {
      await pipeline(store.read(d.digest), createWriteStream(tmp));
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
  await put(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  if (opts.docker)
    await put(join(dir, "manifest.json"), JSON.stringify(await dockerManifestJson(store, root, opts.names)));
  await put(join(dir, "index.json"), JSON.stringify(indexJson(root, opts.names)));
}
