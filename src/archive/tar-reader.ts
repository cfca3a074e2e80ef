// Reads tar streams entry by entry with tar-stream, adding what it leaves out: PAX uid/gid/mtime
// overrides and SCHILY.xattr.* values as raw bytes (tar-stream decodes PAX values as UTF-8).

import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tarStream from "tar-stream";
import { decodePaxRecords } from "./pax.js";

export type TarEntryType =
  | "file"
  | "directory"
  | "symlink"
  | "link"
  | "character-device"
  | "block-device"
  | "fifo"
  | "unsupported";

export interface TarEntryHeader {
  /** The name exactly as the archive has it (PAX path or GNU long name applied). */
  readonly name: string;
  readonly type: TarEntryType;
  /** The type as the archive spells it, for messages about unsupported entries. */
  readonly rawType: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch, fractional when a PAX mtime says so. */
  readonly mtime: number;
  readonly size: number;
  readonly linkname: string;
  readonly devMajor: number;
  readonly devMinor: number;
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

export interface TarEntry {
  readonly header: TarEntryHeader;
  /** The entry's content; drained by the reader if the consumer leaves it. */
  readonly body: AsyncIterable<Uint8Array>;
}

type RawHeader = tarStream.Header & { rawPax?: Buffer | null; type: string | null };

interface ExtractInternals {
  _header: RawHeader | null;
  _decodeLongHeader(buf: Uint8Array): void;
  _applyLongHeaders(): void;
}

const XATTR_PREFIX = "SCHILY.xattr.";

/**
 * Keeps the raw bytes of each entry's PAX header on the entry's header object. This reaches into
 * tar-stream's extractor (pinned in package.json); the check below fails loudly if that changes.
 */
function tapRawPax(extract: tarStream.Extract): void {
  const inner = extract as unknown as ExtractInternals;
  if (typeof inner._decodeLongHeader !== "function" || typeof inner._applyLongHeaders !== "function") {
    throw new Error("tar-stream's extractor no longer has the hooks Kiln uses to read binary PAX values");
  }
  const decode = inner._decodeLongHeader.bind(extract);
  const apply = inner._applyLongHeaders.bind(extract);
  let raw: Buffer | null = null;
  inner._decodeLongHeader = (buf) => {
    if ((inner._header?.type as string | undefined) === "pax-header") raw = Buffer.from(buf);
    decode(buf);
  };
  inner._applyLongHeaders = () => {
    apply();
    if (inner._header) inner._header.rawPax = raw;
    raw = null;
  };
}

function entryType(type: string | null): TarEntryType {
  switch (type) {
    case "file":
    case "contiguous-file":
      return "file";
    case "directory":
    case "symlink":
    case "link":
    case "character-device":
    case "block-device":
    case "fifo":
      return type;
    default:
      return "unsupported";
  }
}

function paxNumber(pax: Map<string, Buffer>, key: string): number | undefined {
  const v = pax.get(key);
  if (v === undefined) return undefined;
  const n = Number(v.toString("latin1"));
  return Number.isFinite(n) ? n : undefined;
}

function toHeader(h: RawHeader): TarEntryHeader {
  const pax = h.rawPax ? decodePaxRecords(h.rawPax) : new Map<string, Buffer>();
  const xattrs = new Map<string, Buffer>();
  for (const [k, v] of pax) if (k.startsWith(XATTR_PREFIX)) xattrs.set(k.slice(XATTR_PREFIX.length), v);
  return {
    name: h.name,
    type: entryType(h.type),
    rawType: String(h.type),
    mode: (h.mode ?? 0) & 0o7777,
    uid: paxNumber(pax, "uid") ?? h.uid ?? 0,
    gid: paxNumber(pax, "gid") ?? h.gid ?? 0,
    mtime: paxNumber(pax, "mtime") ?? (h.mtime ? h.mtime.getTime() / 1000 : 0),
    size: h.size ?? 0,
    linkname: h.linkname ?? "",
    devMajor: h.devmajor ?? 0,
    devMinor: h.devminor ?? 0,
    xattrs,
  };
}

/** An entry's content; a failure names the archive's own problem (e.g. truncation), not the symptom. */
async function* bodyOf(stream: AsyncIterable<Uint8Array>, archiveError: () => Promise<Error | undefined>) {
  try {
    yield* stream;
  } catch (err) {
    throw (await archiveError()) ?? err;
  }
}

function asTarError(err: unknown): Error {
  return new Error(`the tar stream is not readable: ${(err as Error).message}`);
}

/** The entries of an uncompressed tar stream, in archive order. Stopping early destroys `source`. */
export async function* readTarEntries(source: Readable): AsyncGenerator<TarEntry> {
  const extract = tarStream.extract();
  tapRawPax(extract);
  const piped = pipeline(source, extract);
  let failure: Error | undefined;
  piped.catch((err) => {
    failure = asTarError(err);
  });
  // The pipeline's rejection lands a tick after the entry stream is destroyed.
  const archiveError = () => new Promise<Error | undefined>((r) => setImmediate(() => r(failure)));
  let failed = true;
  try {
    for await (const stream of extract) {
      // Handed on as a plain async iterable: Node's pipeline() misses a streamx stream's errors
      // (a truncated archive would hang), while iterating one reports them.
      const body = bodyOf(stream as unknown as AsyncIterable<Uint8Array>, archiveError);
      const entry: TarEntry = { header: toHeader(stream.header as RawHeader), body };
      yield entry;
      // Whatever the consumer did not read is skipped, so the archive moves on.
      stream.resume();
    }
    await piped.catch((err) => {
      throw asTarError(err);
    });
    failed = false;
  } finally {
    if (failed) {
      source.destroy();
      extract.destroy();
    }
  }
}
