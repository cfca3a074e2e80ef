// Joining what the nodes of a multi-node build produced into one result, on the client: the image
// index over every node's manifests (pushed to the registry under the build's tags, or written as
// one OCI/Docker archive), and one root-filesystem tar with a folder per platform.
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import type { ContentStore } from "../content/types.js";
import { writeImageArchive, writeImageLayoutDir } from "../exporter/oci-archive.js";
import { repositoriesOf, wantsPushByDigest } from "../exporter/push-by-digest.js";
import { type Digest, isDigest, sha256Digest } from "../oci/digest.js";
import { formatImageRef, parseImageRef } from "../oci/image-ref.js";
import { formatPlatform, normalizePlatform, type Platform, samePlatform } from "../oci/platform.js";
import {
  type Descriptor,
  type ImageIndex,
  isIndexMediaType,
  MediaType,
  type OciPlatform,
  toOciPlatform,
} from "../oci/spec.js";
import { RegistryClient } from "../registry/client.js";
import type { OutputSpec } from "./build-request.js";

/** One platform's image as a node made it. */
export interface PlatformManifest {
  readonly node: string;
  readonly platform: Platform;
  /** The manifest's descriptor, with its platform. */
  readonly descriptor: Descriptor;
}

/** What one node made for an image output: the root of its image and the platforms it built. */
export interface NodeImage {
  readonly node: string;
  readonly platforms: readonly Platform[];
  readonly root: Descriptor;
}

type ImageOutputSpec = Extract<OutputSpec, { type: "image" }>;
type ArchiveOutputSpec = Extract<OutputSpec, { type: "oci" | "docker" }>;

/** A descriptor as a node's metadata or archive carries it, checked. */
export function descriptorFrom(value: unknown, what: string): Descriptor {
  const d = value as Partial<Descriptor> | undefined;
  if (!d || typeof d.mediaType !== "string" || typeof d.digest !== "string" || !isDigest(d.digest)) {
    throw new Error(`${what}: no image descriptor`);
  }
  if (typeof d.size !== "number") throw new Error(`${what}: the image descriptor has no size`);
  // A lone manifest's descriptor may carry its platform and descriptor annotations: they stay.
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.platform && typeof d.platform.architecture === "string" ? { platform: d.platform } : {}),
    ...(d.annotations && typeof d.annotations === "object" ? { annotations: { ...d.annotations } } : {}),
  };
}

/**
 * The manifests below each node's root, each with its platform: a node's index lists them with
 * theirs; a node's lone manifest is the one platform that node built.
 */
export async function platformManifests(
  images: readonly NodeImage[],
  readIndex: (image: NodeImage) => Promise<ImageIndex>,
): Promise<PlatformManifest[]> {
  const out: PlatformManifest[] = [];
  for (const image of images) {
    if (isIndexMediaType(image.root.mediaType)) {
      const index = await readIndex(image);
      for (const m of index.manifests) {
        if (!m.platform)
          throw new Error(`node ${image.node}: manifest ${m.digest} in its index has no platform`);
        out.push({ node: image.node, platform: fromOciPlatform(m.platform), descriptor: m });
      }
    } else {
      if (image.platforms.length !== 1) {
        throw new Error(
          `node ${image.node} built ${image.platforms.map(formatPlatform).join(", ") || "its default platform"} but made a single manifest`,
        );
      }
      const platform = image.root.platform
        ? fromOciPlatform(image.root.platform)
        : normalizePlatform(image.platforms[0]!);
      out.push({
        node: image.node,
        platform,
        descriptor: { platform: toOciPlatform(platform), ...image.root },
      });
    }
  }
  return out;
}

function fromOciPlatform(p: OciPlatform): Platform {
  return normalizePlatform({ os: p.os, architecture: p.architecture, variant: p.variant });
}

/** Manifests in the order the platforms were requested (the order of `--platform`). */
export function inRequestedOrder(
  manifests: readonly PlatformManifest[],
  requested: readonly Platform[],
): PlatformManifest[] {
  const rank = (m: PlatformManifest) => {
    const i = requested.findIndex((p) => samePlatform(p, m.platform));
    return i < 0 ? requested.length : i;
  };
  return [...manifests].sort((a, b) => rank(a) - rank(b));
}

/** The joined index's bytes: OCI media types unless the output asks for Docker's. */
export function joinedIndex(
  manifests: readonly PlatformManifest[],
  attrs: Readonly<Record<string, string>>,
  defaultOci = true,
): { bytes: Buffer; descriptor: Descriptor } {
  const oci = attrs["oci-mediatypes"] === undefined ? defaultOci : attrs["oci-mediatypes"] !== "false";
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) {
    const m = /^annotation-index\.(.+)$/.exec(k);
    if (m) annotations[m[1]!] = v;
  }
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: oci ? MediaType.OciIndex : MediaType.DockerManifestList,
    manifests: manifests.map((m) => m.descriptor),
    ...(Object.keys(annotations).length ? { annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(index));
  return {
    bytes,
    descriptor: { mediaType: index.mediaType!, digest: sha256Digest(bytes), size: bytes.length },
  };
}

/** The registries an output allows over plain HTTP (`registry.insecure=true`). */
function insecureRegistriesOf(output: ImageOutputSpec): string[] {
  if (!/^(1|t|true)$/i.test(output.attrs["registry.insecure"] ?? "")) return [];
  return [...new Set(output.names.map((n) => parseImageRef(n).registry))];
}

export interface RegistryJoinOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly signal: AbortSignal;
}

/**
 * Joins the manifests the nodes pushed by digest into one index and pushes it under each of the
 * output's names; each node's own index (when a node built several platforms) is read back from
 * the registry first.
 */
export async function pushJoinedIndex(
  output: ImageOutputSpec,
  images: readonly NodeImage[],
  requested: readonly Platform[],
  opts: RegistryJoinOptions,
): Promise<{ index: Descriptor; manifests: PlatformManifest[] }> {
  const client = new RegistryClient({
    insecureRegistries: insecureRegistriesOf(output),
    dockerConfigDir: opts.env.DOCKER_CONFIG || join(opts.env.HOME || homedir(), ".docker"),
    credentialHelperPath: opts.env.PATH,
  });
  try {
    const first = parseImageRef(output.names[0]!);
    const manifests = inRequestedOrder(
      await platformManifests(images, async (image) => {
        const fetched = await client.fetchManifest(first, image.root.digest);
        return fetched.manifest as ImageIndex;
      }),
      requested,
    );
    const { bytes, descriptor } = joinedIndex(manifests, output.attrs);
    // The output's own push-by-digest=true: the index too goes in by digest, under no tag.
    const targets = wantsPushByDigest(output.attrs)
      ? repositoriesOf(output.names).map((repo) => ({
          ...parseImageRef(`${repo}@${descriptor.digest}`),
          digest: undefined,
        }))
      : output.names.map((name) => ({ ...parseImageRef(name), digest: undefined }));
    for (const ref of targets) {
      opts.signal.throwIfAborted();
      try {
        await client.pushManifest(ref, bytes, descriptor.mediaType);
      } catch (err) {
        throw new Error(`pushing the image index to ${formatImageRef(ref)}: ${(err as Error).message}`);
      }
    }
    return { index: descriptor, manifests };
  } finally {
    client.close();
  }
}

/** Imports an OCI/Docker archive (tar of an image layout) into `store`; returns its root descriptor. */
export async function importImageArchive(file: string, store: ContentStore): Promise<Descriptor> {
  let indexJson: string | undefined;
  const extract = tar.extract();
  const done = pipeline(createReadStream(file), extract);
  for await (const entry of extract) {
    const name = entry.header.name.replace(/^\.\//, "");
    const blob = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(name);
    if (blob) {
      await store.write(entry as unknown as Readable, { expected: `${blob[1]}:${blob[2]}` as Digest });
    } else if (name === "index.json") {
      const parts: Buffer[] = [];
      for await (const chunk of entry) parts.push(chunk as Buffer);
      indexJson = Buffer.concat(parts).toString("utf8");
    } else {
      entry.resume();
    }
  }
  await done;
  if (indexJson === undefined) throw new Error(`${file} has no index.json`);
  const index = JSON.parse(indexJson) as ImageIndex;
  const root = index.manifests?.[0];
  if (!root) throw new Error(`${file}: index.json lists no image`);
  // Its annotations there name the image (ref.name); the joined archive names it afresh.
  const { annotations: _names, ...descriptor } = descriptorFrom(root, file);
  return descriptor;
}

/** Writes the joined image of an `oci`/`docker` output where the output's `dest` and `tar` say. */
export async function writeJoinedArchive(
  output: ArchiveOutputSpec,
  store: ContentStore,
  root: Descriptor,
  stdout: NodeJS.WritableStream,
): Promise<void> {
  const opts = { names: output.names, docker: output.type === "docker" };
  const dest = output.dest;
  if (!output.tar) {
    if (!dest || dest === "-") throw new Error(`output type=${output.type},tar=false needs dest=DIRECTORY`);
    await writeImageLayoutDir(store, root, resolve(dest), opts);
    return;
  }
  await writeStreamTo(dest, stdout, (out) => writeImageArchive(store, root, out, opts));
}

/** Runs `write` into the file `dest` (atomically), or into `stdout` for no dest or `-`. */
async function writeStreamTo(
  dest: string | undefined,
  stdout: NodeJS.WritableStream,
  write: (out: Writable) => Promise<void>,
): Promise<void> {
  if (!dest || dest === "-") {
    const pass = new PassThrough();
    const sent = pipeline(pass, stdout as Writable, { end: false });
    await Promise.all([write(pass), sent]);
    return;
  }
  const path = resolve(dest);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await write(createWriteStream(tmp));
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** One node's root-filesystem tar and the folder its entries go under (`linux_arm64/`, or none). */
export interface RootfsPart {
  readonly file: string;
  readonly prefix: string;
}

/** Joins the nodes' root-filesystem tars into one, each node's entries under its folder. */
export async function writeJoinedRootfsTar(
  parts: readonly RootfsPart[],
  dest: string | undefined,
  stdout: NodeJS.WritableStream,
): Promise<void> {
  await writeStreamTo(dest, stdout, async (out) => {
    const pack = tar.pack();
    const sent = pipeline(pack, out);
    try {
      for (const part of parts) await copyEntries(part, pack);
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
    await sent;
  });
}

async function copyEntries(part: RootfsPart, pack: tar.Pack): Promise<void> {
  const add = (header: Partial<tar.Header> & { name: string }, body?: Readable) =>
    new Promise<void>((resolvePromise, reject) => {
      const entry = pack.entry(header, (err) => (err ? reject(err) : resolvePromise()));
      if (body) pipeline(body, entry).catch(reject);
    });
  if (part.prefix) {
    await add({ name: part.prefix.replace(/\/$/, ""), type: "directory", mode: 0o755, mtime: new Date(0) });
  }
  const extract = tar.extract();
  const done = pipeline(createReadStream(part.file), extract);
  for await (const entry of extract) {
    const h = entry.header;
    // The packer writes the (new) name and link name into a PAX header itself when they need one.
    const pax = Object.fromEntries(
      Object.entries(h.pax ?? {}).filter(([k]) => k !== "path" && k !== "linkpath"),
    );
    const header: Partial<tar.Header> & { name: string } = {
      ...h,
      pax: Object.keys(pax).length ? pax : undefined,
      name: part.prefix + h.name,
      // A hard link names another entry of the same archive, which moved with it.
      ...(h.type === "link" && h.linkname ? { linkname: part.prefix + h.linkname } : {}),
    };
    if (h.type === "file" || h.type === "contiguous-file") await add(header, entry as unknown as Readable);
    else {
      entry.resume();
      await add(header);
    }
  }
  await done;
}
