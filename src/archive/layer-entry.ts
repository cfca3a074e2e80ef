// One entry of an OCI layer as Kiln reads and writes it: what a tar header says, in file-system terms.

export type LayerEntryKind =
  | "file"
  | "dir"
  | "symlink"
  | "hardlink"
  | "char-device"
  | "block-device"
  | "fifo"
  /** `.wh.<name>`: the entry named by `path` is deleted from the layers below. */
  | "whiteout"
  /** `.wh..wh..opq` inside `path`: the directory hides everything below it. */
  | "opaque";

export interface LayerEntry {
  /** Relative, clean, "/"-separated; for whiteouts the deleted path, for opaque markers the directory. */
  readonly path: string;
  readonly kind: LayerEntryKind;
  /** Permission bits including setuid/setgid/sticky (no file-type bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch (layers carry whole seconds, as Docker writes them). */
  readonly mtime: number;
  /** Bytes of content (files only). */
  readonly size: number;
  /** Symlink target, or for hard links the path (relative to the layer root) of the linked entry. */
  readonly linkTarget?: string;
  readonly devMajor?: number;
  readonly devMinor?: number;
  /** Extended attributes, raw bytes (binary values such as security.capability survive). */
  readonly xattrs?: ReadonlyMap<string, Buffer>;
  /** Where a file's content is read from when writing a layer. */
  readonly sourcePath?: string;
}

export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";

/** Overlay's own bookkeeping (opaque flags, origins, redirects) never travels in a layer. */
export function isOverlayPrivateXattr(name: string): boolean {
  return name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.");
}
