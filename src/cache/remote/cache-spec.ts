// `--cache-to` and `--cache-from` attributes, checked and typed: what to export or import, where, and how.
import type { CacheSpec } from "../../client/build-request.js";
import type { Compression } from "../../exporter/layer-blobs.js";

export type CacheExportTarget =
  | { readonly type: "registry"; readonly ref: string }
  | { readonly type: "local"; readonly dest: string; readonly tag: string };

export interface CacheExportSpec {
  readonly target: CacheExportTarget;
  /** `min`: the final result's chain only; `max`: every vertex's result, intermediate stages too. */
  readonly mode: "min" | "max";
  readonly ociMediaTypes: boolean;
  /** An OCI image manifest (config = the cache config) instead of an index. */
  readonly imageManifest: boolean;
  readonly compression: Compression;
  readonly compressionLevel?: number;
  /** Re-encode layers whose blobs use another compression. */
  readonly forceCompression: boolean;
  /** Failures become warnings. */
  readonly ignoreError: boolean;
  /** How users named it, for messages. */
  readonly name: string;
}

export type CacheImportSpec =
  | { readonly type: "registry"; readonly ref: string; readonly name: string }
  | {
      readonly type: "local";
      readonly src: string;
      readonly tag?: string;
      readonly digest?: string;
      readonly name: string;
    };

export class CacheSpecError extends Error {
  override name = "CacheSpecError";
}

const bool = (flag: string, attr: string, v: string | undefined, dflt: boolean): boolean => {
  if (v === undefined || v === "") return dflt;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new CacheSpecError(`${flag}: ${attr}=${v} is not a boolean: use true or false`);
};

/** The registry and local exports asked for; `inline` is handled by the image exporter (see inlineCacheWanted). */
export function parseCacheExports(specs: readonly CacheSpec[]): CacheExportSpec[] {
  const out: CacheExportSpec[] = [];
  for (const s of specs) {
    const flag = "--cache-to";
    const a = s.attrs;
    let target: CacheExportTarget;
    if (s.type === "inline") continue;
    if (s.type === "registry") {
      if (!a.ref) throw new CacheSpecError(`${flag} type=registry needs ref=REGISTRY/NAME[:TAG]`);
      target = { type: "registry", ref: a.ref };
    } else if (s.type === "local") {
      if (!a.dest) throw new CacheSpecError(`${flag} type=local needs dest=DIRECTORY`);
      target = { type: "local", dest: a.dest, tag: a.tag || "latest" };
    } else {
      throw new CacheSpecError(`${flag} type=${s.type} is not supported: use registry, local or inline`);
    }
    const mode = a.mode ?? "min";
    if (mode !== "min" && mode !== "max")
      throw new CacheSpecError(`${flag}: mode=${mode} is not supported: use min or max`);
    const compression = a.compression ?? "gzip";
    if (compression !== "gzip" && compression !== "uncompressed")
      throw new CacheSpecError(
        `${flag}: compression=${compression} is not supported: use gzip or uncompressed`,
      );
    let compressionLevel: number | undefined;
    if (a["compression-level"] !== undefined) {
      compressionLevel = Number(a["compression-level"]);
      if (!Number.isInteger(compressionLevel) || compressionLevel < 0 || compressionLevel > 9)
        throw new CacheSpecError(
          `${flag}: compression-level=${a["compression-level"]} must be 0 to 9 for gzip`,
        );
    }
    const ociMediaTypes = bool(flag, "oci-mediatypes", a["oci-mediatypes"], true);
    const imageManifest = bool(flag, "image-manifest", a["image-manifest"], false);
    if (imageManifest && !ociMediaTypes)
      throw new CacheSpecError(`${flag}: image-manifest=true needs oci-mediatypes=true`);
    out.push({
      target,
      mode,
      ociMediaTypes,
      imageManifest,
      compression,
      compressionLevel,
      forceCompression: bool(flag, "force-compression", a["force-compression"], false),
      ignoreError: bool(flag, "ignore-error", a["ignore-error"], false),
      name: target.type === "registry" ? target.ref : `${target.dest} (local)`,
    });
  }
  return out;
}

/** Whether the exported image carries its own cache: `--cache-to type=inline` or BUILDKIT_INLINE_CACHE=1. */
export function inlineCacheWanted(
  specs: readonly CacheSpec[],
  buildArgs: Readonly<Record<string, string>>,
): boolean {
  if (specs.some((s) => s.type === "inline")) return true;
  const arg = buildArgs.BUILDKIT_INLINE_CACHE;
  return arg !== undefined && arg !== "" && arg !== "0" && arg !== "false";
}

export function parseCacheImports(specs: readonly CacheSpec[]): CacheImportSpec[] {
  return specs.map((s) => {
    const a = s.attrs;
    if (s.type === "registry") {
      if (!a.ref) throw new CacheSpecError("--cache-from type=registry needs ref=REGISTRY/NAME[:TAG]");
      return { type: "registry", ref: a.ref, name: a.ref };
    }
    if (s.type === "local") {
      if (!a.src) throw new CacheSpecError("--cache-from type=local needs src=DIRECTORY");
      if (a.tag && a.digest)
        throw new CacheSpecError("--cache-from type=local takes tag= or digest=, not both");
      return { type: "local", src: a.src, tag: a.tag, digest: a.digest, name: `${a.src} (local)` };
    }
    throw new CacheSpecError(`--cache-from type=${s.type} is not supported: use registry or local`);
  });
}
