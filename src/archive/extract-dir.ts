// Tar streams unpacked into plain directories: layers (whiteouts applied) and output or context
// tarballs (whiteout-looking names kept as files), both with the same escape checks.
import { Readable } from "node:stream";
import { type ExtractResult, extractLayer } from "./safe-extract.js";

function permissionPolicy(): "fail" | "skip" {
  // Only root can set any owner, make devices or write trusted.* xattrs; others get what they can.
  return process.getuid?.() === 0 ? "fail" : "skip";
}

/**
 * Applies an uncompressed OCI layer to `dir`: `.wh.` entries delete, opaque markers empty dirs —
 * or, when `dir` is an unmounted overlay upper dir over `lowerDirs` (nearest first), become
 * overlay whiteouts and opaque dirs.
 */
export function applyLayerToDir(
  dir: string,
  layer: Readable,
  lowerDirs: readonly string[] = [],
): Promise<ExtractResult> {
  return extractLayer(dir, layer, { whiteouts: "apply", permissionErrors: permissionPolicy(), lowerDirs });
}

/** Unpacks a tar (an exported file system, a context on stdin) into `dir`, refusing unsafe entries. */
export async function extractTarToDir(stream: Readable | NodeJS.ReadableStream, dir: string): Promise<void> {
  const readable = stream instanceof Readable ? stream : new Readable().wrap(stream);
  await extractLayer(dir, readable, { whiteouts: "keep", permissionErrors: permissionPolicy() });
}
