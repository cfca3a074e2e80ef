// Runs a build's outputs: images (pushed or not), OCI and Docker archives, `docker load`, and
// root filesystems as directories or tars — on the client's side through the session.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import type { OutputSpec } from "../client/build-request.js";
import type { ContentStore } from "../content/types.js";
import { formatPlatform, platformDirName } from "../oci/platform.js";
import type { Descriptor } from "../oci/spec.js";
import type { BuildSession, ExportTarget } from "../session/types.js";
import type { Snapshotter } from "../snapshot/types.js";
import { imageWriteOptions } from "./image-attrs.js";
import {
  type ImageWriteOptions,
  type ImageWriterDeps,
  type PlatformResult,
  type WrittenImage,
  writeImageIndex,
  writeImageManifest,
} from "./image-writer.js";
import type { LayerUpload, LayerUploads } from "./layer-blobs.js";
import { writeImageArchive } from "./oci-archive.js";
import { pushByDigest, repositoriesOf, wantsPushByDigest } from "./push-by-digest.js";
import { packDirectory } from "./rootfs-tar.js";

/** Pushes an image (manifest or index and everything below it) to `name`. */
export type ImagePusher = (
  name: string,
  root: Descriptor,
  store: ContentStore,
  signal: AbortSignal,
) => Promise<void>;

export interface ExportDeps extends ImageWriterDeps {
  readonly push: ImagePusher;
  /**
   * Opens an upload to `repository` (`registry/repo`) fed while a layer is compressed, so that a
   * push overlaps the compression; absent, layers go up with the push after being made.
   */
  readonly startLayerUpload?: (repository: string, signal: AbortSignal) => Promise<LayerUpload>;
}

/** Uploads to every repository the output pushes to; one that cannot start is left to the push. */
function layerUploadsFor(
  deps: ExportDeps,
  names: readonly string[],
  signal: AbortSignal,
): LayerUploads | undefined {
  const start = deps.startLayerUpload;
  if (!start) return undefined;
  return async () => {
    const started = await Promise.all(
      repositoriesOf(names).map((r) => start(r, signal).catch(() => undefined)),
    );
    return started.filter((u): u is LayerUpload => u !== undefined);
  };
}

export interface ExportOptions {
  readonly session: BuildSession;
  readonly signal: AbortSignal;
  readonly epoch?: number;
}

interface ImageOutcome {
  readonly root: Descriptor;
  readonly images: readonly WrittenImage[];
}

/** Manifests per platform, joined into an index when there is more than one. */
async function buildImage(
  deps: ExportDeps,
  results: readonly PlatformResult[],
  opts: ImageWriteOptions,
): Promise<ImageOutcome> {
  const images = await Promise.all(results.map((r) => writeImageManifest(deps, r, opts)));
  // A lone manifest is the root, its platform kept on its descriptor as BuildKit keeps it.
  if (images.length === 1) return { root: images[0]!.manifest, images };
  return { root: await writeImageIndex(deps.store, images, opts), images };
}

async function sendToClient(
  session: BuildSession,
  target: ExportTarget,
  source: (out: NodeJS.WritableStream) => Promise<void>,
): Promise<void> {
  const { stream, done } = await session.openExport(target);
  await source(stream);
  await done;
}

/** The root filesystems of `results` as one tar, each under its platform's folder when `split`. */
async function rootfsTar(
  snapshotter: Snapshotter,
  results: readonly PlatformResult[],
  split: boolean,
  out: NodeJS.WritableStream,
): Promise<void> {
  const pack = tar.pack();
  const sent = pipeline(pack as unknown as Readable, out);
  try {
    for (const r of results) {
      const prefix = split ? `${platformDirName(r.platform)}/` : "";
      if (r.snapshot) await snapshotter.withMounted(r.snapshot, (dir) => packDirectory(pack, dir, prefix));
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
  }
  await sent;
}

/** Exports every output; returns Buildx's metadata for the (last) image-producing output. */
export async function exportOutputs(
  deps: ExportDeps,
  results: readonly PlatformResult[],
  outputs: readonly OutputSpec[],
  opts: ExportOptions,
): Promise<{ metadata: Record<string, unknown>; imageId?: string }> {
  const metadata: Record<string, unknown> = {};
  let imageId: string | undefined;
  const record = (image: ImageOutcome, names: readonly string[]) => {
    metadata["containerimage.digest"] = image.root.digest;
    metadata["containerimage.descriptor"] = image.root;
    if (image.images.length === 1) {
      metadata["containerimage.config.digest"] = image.images[0]!.config.digest;
      imageId = image.images[0]!.config.digest;
    } else {
      imageId = image.root.digest;
      // Buildx reports only the index; each platform's manifest lets a user pin one platform by digest.
      metadata["kiln.platforms"] = Object.fromEntries(
        image.images.map((i) => [
          formatPlatform(i.platform),
          { digest: i.manifest.digest, descriptor: i.manifest },
        ]),
      );
    }
    if (names.length) metadata["image.name"] = names.join(",");
  };
  for (const [index, output] of outputs.entries()) {
    switch (output.type) {
      case "image": {
        if (output.push && output.names.length === 0)
          throw new Error(
            "push requested but the image has no name: use -t NAME or --output type=image,name=NAME",
          );
        const image = await buildImage(deps, results, {
          ...imageWriteOptions(output.attrs, { epoch: opts.epoch, defaultOciMediaTypes: true }),
          layerUploads: output.push ? layerUploadsFor(deps, output.names, opts.signal) : undefined,
        });
        record(image, output.names);
        if (output.push) {
          if (wantsPushByDigest(output.attrs)) {
            const repos = await pushByDigest(deps.push, output.names, image.root, deps.store, opts.signal);
            metadata["image.name"] = repos.join(",");
          } else {
            for (const name of output.names) await deps.push(name, image.root, deps.store, opts.signal);
          }
        }
        break;
      }
      case "oci":
      case "docker": {
        const docker = output.type === "docker";
        const image = await buildImage(
          deps,
          results,
          imageWriteOptions(output.attrs, { epoch: opts.epoch, defaultOciMediaTypes: !docker }),
        );
        record(image, output.names);
        const kind = docker && !output.dest ? "docker-load" : output.tar ? "file" : "unpack-tar";
        await sendToClient(opts.session, { output: index, kind }, (out) =>
          writeImageArchive(
            deps.store,
            image.root,
            out as NodeJS.WritableStream & import("node:stream").Writable,
            { names: output.names, docker },
          ),
        );
        break;
      }
      case "local":
      case "tar": {
        const split = results.length > 1 && output.attrs["platform-split"] !== "false";
        const kind = output.type === "local" ? "unpack-tar" : "file";
        await sendToClient(opts.session, { output: index, kind }, (out) =>
          rootfsTar(deps.snapshotter, results, split, out),
        );
        break;
      }
    }
  }
  return { metadata, imageId };
}
