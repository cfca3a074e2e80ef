// Images read from an OCI image layout directory (`oci-layout://PATH[:TAG|@DIGEST]`).
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ContentStore } from "../content/types.js";
import { type Digest, digestHex, parseDigest, sha256Digest } from "../oci/digest.js";
import { bestPlatformMatch, formatPlatform, type Platform } from "../oci/platform.js";
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from "../oci/spec.js";
import type { ImageProvider, ResolvedImage } from "./image-provider.js";

/** Splits `PATH[:TAG|@DIGEST]` (the part after `oci-layout://`). */
export function parseOciLayoutRef(spec: string): { path: string; tag?: string; digest?: Digest } {
  const at = spec.lastIndexOf("@");
  if (at > 0 && /^sha256:[a-f0-9]{64}$/.test(spec.slice(at + 1)))
    return { path: spec.slice(0, at), digest: parseDigest(spec.slice(at + 1)) };
  const colon = spec.lastIndexOf(":");
  if (colon > spec.lastIndexOf("/") && colon > 0)
    return { path: spec.slice(0, colon), tag: spec.slice(colon + 1) };
  return { path: spec };
}

export class OciLayoutImageProvider implements ImageProvider {
  private async readBlob(dir: string, digest: Digest): Promise<Buffer> {
    const data = await readFile(join(dir, "blobs", "sha256", digestHex(digest)));
    if (sha256Digest(data) !== digest)
      throw new Error(`OCI layout ${dir}: blob ${digest} does not match its digest`);
    return data;
  }

  async resolve(ref: string, platform: Platform): Promise<ResolvedImage> {
    const { path, tag, digest } = parseOciLayoutRef(ref);
    const index = JSON.parse(await readFile(join(path, "index.json"), "utf8")) as ImageIndex;
    let desc: Descriptor | undefined;
    if (digest) desc = { mediaType: "", digest, size: 0 };
    else {
      const wanted = tag ?? "latest";
      desc =
        index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === wanted) ??
        (tag === undefined && index.manifests.length === 1 ? index.manifests[0] : undefined);
      if (!desc)
        throw new Error(`OCI layout ${path}: no image tagged ${JSON.stringify(wanted)} in index.json`);
    }
    let doc = JSON.parse((await this.readBlob(path, desc.digest)).toString("utf8")) as
      | ImageIndex
      | ImageManifest;
    let manifestDigest = desc.digest;
    const pinned = `${path}@${desc.digest}`;
    if ("manifests" in doc) {
      const chosen = bestPlatformMatch(
        platform,
        doc.manifests.map((m) => ({ ...m, platform: m.platform })),
      );
      if (!chosen) {
        const have = doc.manifests
          .map((m) => (m.platform ? formatPlatform(m.platform) : "unknown"))
          .join(", ");
        throw new Error(`OCI layout ${path}: no image for ${formatPlatform(platform)} (it has ${have})`);
      }
      manifestDigest = chosen.digest;
      doc = JSON.parse((await this.readBlob(path, chosen.digest)).toString("utf8")) as ImageManifest;
    }
    const manifest = doc as ImageManifest;
    const config = JSON.parse(
      (await this.readBlob(path, manifest.config.digest)).toString("utf8"),
    ) as ImageConfig;
    return { pinnedRef: pinned, manifestDigest, manifest, config };
  }

  async fetchBlob(ref: string, desc: Descriptor, store: ContentStore): Promise<void> {
    if (await store.has(desc.digest)) return;
    const { path } = parseOciLayoutRef(ref);
    await store.write(createReadStream(join(path, "blobs", "sha256", digestHex(desc.digest))), {
      expected: desc.digest,
      expectedSize: desc.size,
    });
  }
}
