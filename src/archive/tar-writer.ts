// Writes layer entries as an uncompressed POSIX (ustar + PAX) tar, the format Docker and
// containerd write. Written here rather than with tar-stream's packer, which cannot put binary
// PAX values (security.capability xattrs) or a zero mode into an archive. Deterministic: the same
// entries give the same bytes (whole-second mtimes, no user or group names, no access times).
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { type LayerEntry, OPAQUE_MARKER, WHITEOUT_PREFIX } from "./layer-entry.js";
import { encodePaxRecords } from "./pax.js";

const BLOCK = 512;
const MAX_OCTAL_ID = 0o7777777;
const MAX_OCTAL_SIZE = 0o77777777777;
/** File contents are read 1 MiB at a time: every chunk costs a trip through each stream stage after. */
const READ_CHUNK = 1 << 20;

/** The name an entry has in the archive (directories end in "/"). */
export function tarNameOf(entry: LayerEntry): string {
  const slash = entry.path.lastIndexOf("/");
  const dir = slash < 0 ? "" : entry.path.slice(0, slash + 1);
  const base = entry.path.slice(slash + 1);
  if (entry.kind === "whiteout") return `${dir}${WHITEOUT_PREFIX}${base}`;
  if (entry.kind === "opaque") return entry.path === "" ? OPAQUE_MARKER : `${entry.path}/${OPAQUE_MARKER}`;
  if (entry.kind === "dir") return `${entry.path}/`;
  return entry.path;
}

const TYPEFLAG: Record<LayerEntry["kind"], string> = {
  file: "0",
  whiteout: "0",
  opaque: "0",
  hardlink: "1",
  symlink: "2",
  "char-device": "3",
  "block-device": "4",
  dir: "5",
  fifo: "6",
};

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

/** Splits `name` into ustar's prefix and name fields, or undefined when it cannot fit. */
function splitUstarName(name: string): { prefix: string; name: string } | undefined {
  if (!isAscii(name)) return undefined;
  if (name.length <= 100) return { prefix: "", name };
  // The split must be at a "/", with at most 155 bytes before it and 100 after.
  for (let i = name.indexOf("/"); i >= 0 && i <= 155; i = name.indexOf("/", i + 1)) {
    if (name.length - i - 1 <= 100 && i > 0) return { prefix: name.slice(0, i), name: name.slice(i + 1) };
  }
  return undefined;
}

function writeString(block: Buffer, offset: number, size: number, value: string): void {
  block.write(value, offset, size, "utf8");
}

/** Zero-padded octal with a NUL terminator, as Go writes numeric fields. */
function writeOctal(block: Buffer, offset: number, size: number, value: number): void {
  block.write(`${value.toString(8).padStart(size - 1, "0")}\0`, offset, size, "latin1");
}

function writeBase256(block: Buffer, offset: number, size: number, value: number): void {
  let v = BigInt(value);
  for (let i = offset + size - 1; i > offset; i--) {
    block[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[offset] = 0x80;
}

interface HeaderFields {
  readonly name: string;
  readonly prefix: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly typeflag: string;
  readonly linkname: string;
  readonly devMajor: number;
  readonly devMinor: number;
}

function headerBlock(h: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, h.name);
  writeOctal(block, 100, 8, h.mode);
  writeOctal(block, 108, 8, Math.min(h.uid, MAX_OCTAL_ID));
  writeOctal(block, 116, 8, Math.min(h.gid, MAX_OCTAL_ID));
  if (h.size > MAX_OCTAL_SIZE) writeBase256(block, 124, 12, h.size);
  else writeOctal(block, 124, 12, h.size);
  writeOctal(block, 136, 12, Math.max(0, h.mtime));
  block.write(h.typeflag, 156, 1, "latin1");
  writeString(block, 157, 100, h.linkname);
  block.write("ustar\x0000", 257, 8, "latin1");
  writeOctal(block, 329, 8, h.devMajor);
  writeOctal(block, 337, 8, h.devMinor);
  writeString(block, 345, 155, h.prefix);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return block;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** A stand-in for a ustar field when PAX carries the real value (readers take the PAX one). */
function standIn(s: string, max: number): string {
  const ascii = s.replace(/[^\x20-\x7e]/g, "_");
  return ascii.length <= max ? ascii : ascii.slice(ascii.length - max);
}

async function* entryBlocks(entry: LayerEntry): AsyncGenerator<Buffer> {
  const fullName = tarNameOf(entry);
  const size = entry.kind === "file" ? entry.size : 0;
  const mtime = Math.floor(entry.mtime);
  const records: [string, Buffer | string][] = [];
  let split = splitUstarName(fullName);
  if (!split) {
    records.push(["path", fullName]);
    split = { prefix: "", name: standIn(fullName, 100) };
  }
  let linkname = entry.linkTarget ?? "";
  if (!isAscii(linkname) || linkname.length > 100) {
    records.push(["linkpath", linkname]);
    linkname = standIn(linkname, 100);
  }
  if (entry.uid > MAX_OCTAL_ID) records.push(["uid", String(entry.uid)]);
  if (entry.gid > MAX_OCTAL_ID) records.push(["gid", String(entry.gid)]);
  if (size > MAX_OCTAL_SIZE) records.push(["size", String(size)]);
  const xattrs = [...(entry.xattrs ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [k, v] of xattrs) records.push([`SCHILY.xattr.${k}`, v]);
  if (records.length > 0) {
    const pax = encodePaxRecords(records);
    const base = split.name.replace(/\/$/, "");
    yield headerBlock({
      name: standIn(`PaxHeaders.0/${base.slice(base.lastIndexOf("/") + 1)}`, 100),
      prefix: "",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: pax.length,
      mtime,
      typeflag: "x",
      linkname: "",
      devMajor: 0,
      devMinor: 0,
    });
    yield pax;
    yield padding(pax.length);
  }
  yield headerBlock({
    ...split,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size,
    mtime,
    typeflag: TYPEFLAG[entry.kind],
    linkname,
    devMajor: entry.devMajor ?? 0,
    devMinor: entry.devMinor ?? 0,
  });
  if (size === 0) return;
  if (!entry.sourcePath) throw new Error(`layer entry ${entry.path} has content but no source file`);
  let written = 0;
  for await (const chunk of createReadStream(entry.sourcePath, {
    end: size - 1,
    highWaterMark: READ_CHUNK,
  })) {
    written += (chunk as Buffer).length;
    yield chunk as Buffer;
  }
  if (written !== size) {
    throw new Error(
      `${entry.sourcePath} changed size while being written to a layer (${written} of ${size} bytes)`,
    );
  }
  yield padding(size);
}

async function* archiveBlocks(entries: AsyncIterable<LayerEntry>): AsyncGenerator<Buffer> {
  for await (const entry of entries) yield* entryBlocks(entry);
  yield Buffer.alloc(2 * BLOCK);
}

/** Streams `entries` as a tar; an error while producing them fails the stream. */
export function writeLayerTar(entries: AsyncIterable<LayerEntry>): Readable {
  return Readable.from(archiveBlocks(entries), { objectMode: false });
}
