// The attributes of image-producing outputs (`type=image|registry|oci|docker`) as BuildKit reads
// them: compression (compression, compression-level, force-compression), media types
// (oci-mediatypes), times (rewrite-timestamp, source-date-epoch), annotations (annotation.*,
// annotation-index.*, annotation-manifest[PLATFORM].*, annotation-*-descriptor.*) and naming
// (name-canonical, push-by-digest, store).
import { parsePlatform } from "../oci/platform.js";
import { annotationPlatformKey, type ImageAnnotations, type ImageWriteOptions } from "./image-writer.js";

/** BuildKit's attribute for an annotation: `annotation[-TYPE][[PLATFORM]].KEY`. */
const ANNOTATION_KEY = /^annotation(?:-([a-z-]+))?(?:\[([A-Za-z0-9_/-]+)\])?\.(\S+)$/;

/** Go's strconv.ParseBool, with an empty value meaning true (BuildKit's reading of `push-by-digest=`). */
export function parseBoolAttr(
  attrs: Readonly<Record<string, string>>,
  key: string,
  fallback = false,
): boolean {
  const v = attrs[key];
  if (v === undefined) return fallback;
  if (v === "" || /^(1|t|T|true|TRUE|True)$/.test(v)) return true;
  if (/^(0|f|F|false|FALSE|False)$/.test(v)) return false;
  throw new Error(`non-bool value ${JSON.stringify(v)} specified for ${key}`);
}

/** Annotations from the attributes, grouped as the image writer places them. */
export function parseAnnotationAttrs(attrs: Readonly<Record<string, string>>): ImageAnnotations {
  const index: Record<string, string> = {};
  const indexDescriptor: Record<string, string> = {};
  const manifest: Record<string, Record<string, string>> = {};
  const manifestDescriptor: Record<string, Record<string, string>> = {};
  for (const [k, v] of Object.entries(attrs)) {
    const m = ANNOTATION_KEY.exec(k);
    if (!m) continue;
    const [, type = "manifest", platformSpec, key] = m;
    let platform = "";
    if (platformSpec) {
      try {
        platform = annotationPlatformKey(parsePlatform(platformSpec));
      } catch (err) {
        throw new Error(`invalid annotation ${k}: ${(err as Error).message}`);
      }
    }
    switch (type) {
      case "index":
        index[key!] = v;
        break;
      case "index-descriptor":
        indexDescriptor[key!] = v;
        break;
      case "manifest":
        manifest[platform] = { ...manifest[platform], [key!]: v };
        break;
      case "manifest-descriptor":
        manifestDescriptor[platform] = { ...manifestDescriptor[platform], [key!]: v };
        break;
      default:
        throw new Error(
          `unrecognized annotation type ${type} in ${k}: use index, index-descriptor, manifest or manifest-descriptor`,
        );
    }
  }
  return { index, indexDescriptor, manifest, manifestDescriptor };
}

function hasAny(group: Readonly<Record<string, Readonly<Record<string, string>>>>): boolean {
  return Object.values(group).some((g) => Object.keys(g).length > 0);
}

export interface ImageAttrsContext {
  /** The frontend's SOURCE_DATE_EPOCH, if any (the `source-date-epoch` attribute overrides it). */
  readonly epoch?: number;
  /** Media types when the attributes say nothing: OCI for images and OCI layouts, Docker's for `type=docker`. */
  readonly defaultOciMediaTypes: boolean;
}

/** How the image writer should write an output's image; throws on attributes BuildKit rejects. */
export function imageWriteOptions(
  attrs: Readonly<Record<string, string>>,
  ctx: ImageAttrsContext,
): ImageWriteOptions {
  const kind = attrs.compression ?? "gzip";
  if (kind === "zstd" || kind === "estargz") {
    throw new Error(
      `compression=${kind} is not supported: Node.js 20's zlib has no zstd; use gzip or uncompressed`,
    );
  }
  if (kind !== "gzip" && kind !== "uncompressed")
    throw new Error(`unsupported compression type ${JSON.stringify(kind)}: use gzip or uncompressed`);
  let compressionLevel: number | undefined;
  if (attrs["compression-level"] !== undefined) {
    const raw = attrs["compression-level"];
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isInteger(n))
      throw new Error(`non-integer value ${JSON.stringify(raw)} specified for compression-level`);
    if (kind === "gzip" && (n < -1 || n > 9))
      throw new Error(`compression-level=${n} is out of range for gzip: use 0 (none) to 9 (best)`);
    compressionLevel = n === -1 ? undefined : n;
  }
  let epoch = ctx.epoch;
  if (attrs["source-date-epoch"] !== undefined && attrs["source-date-epoch"] !== "") {
    const raw = attrs["source-date-epoch"];
    if (!/^\d+$/.test(raw))
      throw new Error(`invalid source-date-epoch ${JSON.stringify(raw)}: expected seconds`);
    epoch = Number(raw);
  }
  const ociMediaTypes = parseBoolAttr(attrs, "oci-mediatypes", ctx.defaultOciMediaTypes);
  const annotations = parseAnnotationAttrs(attrs);
  if (
    !ociMediaTypes &&
    (Object.keys(annotations.index).length > 0 ||
      Object.keys(annotations.indexDescriptor).length > 0 ||
      hasAny(annotations.manifestDescriptor))
  ) {
    throw new Error(
      'cannot export annotations with "oci-mediatypes=false": only manifest annotations have a place in Docker\'s media types',
    );
  }
  // Accepted for Buildx compatibility; validated here, acted on by the exporter.
  parseBoolAttr(attrs, "name-canonical");
  parseBoolAttr(attrs, "push-by-digest");
  parseBoolAttr(attrs, "store", true);
  return {
    compression: kind,
    compressionLevel,
    forceCompression: parseBoolAttr(attrs, "force-compression"),
    ociMediaTypes,
    epoch,
    rewriteTimestamp: parseBoolAttr(attrs, "rewrite-timestamp"),
    annotations,
  };
}
