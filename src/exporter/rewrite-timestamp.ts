// `rewrite-timestamp=true`: every time in a layer tar later than SOURCE_DATE_EPOCH becomes the
// epoch (BuildKit clamps mtime, atime and ctime the same way), so files a RUN step wrote at
// different moments give the same layer. Works on the tar's bytes as they stream: header blocks
// are patched in place, PAX records re-encoded, file contents passed through untouched.
import { Transform, type TransformCallback } from "node:stream";
import { decodePaxRecords, encodePaxRecords } from "../archive/pax.js";

const BLOCK = 512;
const MTIME = { offset: 136, size: 12 };
const SIZE = { offset: 124, size: 12 };
const CHKSUM = { offset: 148, size: 8 };
const TYPEFLAG = 156;
/** Types whose size field does not count data that follows (Go's archive/tar reads them so too). */
const HEADER_ONLY = new Set(["1", "2", "3", "4", "5", "6"]);
const TIME_RECORDS = new Set(["mtime", "atime", "ctime"]);

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** A numeric header field: octal text, or base-256 when the high bit of its first byte is set. */
function readNumber(block: Buffer, offset: number, size: number): number {
  if (block[offset]! & 0x80) {
    let v = block[offset]! & 0x7f;
    for (let i = offset + 1; i < offset + size; i++) v = v * 256 + block[i]!;
    return v;
  }
  const text = block
    .toString("latin1", offset, offset + size)
    .replace(/[\0 ]+$/, "")
    .trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

function writeOctal(block: Buffer, offset: number, size: number, value: number): void {
  block.write(`${value.toString(8).padStart(size - 1, "0")}\0`, offset, size, "latin1");
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++)
    sum += i >= CHKSUM.offset && i < CHKSUM.offset + CHKSUM.size ? 0x20 : block[i]!;
  return sum === readNumber(block, CHKSUM.offset, CHKSUM.size);
}

function writeChecksum(block: Buffer): void {
  block.fill(0x20, CHKSUM.offset, CHKSUM.offset + CHKSUM.size);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, CHKSUM.offset, CHKSUM.size, "latin1");
}

/** Clamps a header block's mtime field; returns whether it changed. */
function clampHeaderTime(block: Buffer, epoch: number): boolean {
  if (readNumber(block, MTIME.offset, MTIME.size) <= epoch) return false;
  writeOctal(block, MTIME.offset, MTIME.size, epoch);
  return true;
}

/** PAX records with every time after the epoch set to it; undefined when none was. */
function clampPaxRecords(data: Buffer, epoch: number): Buffer | undefined {
  const records = decodePaxRecords(data);
  let changed = false;
  const out: [string, Buffer | string][] = [];
  for (const [key, value] of records) {
    if (TIME_RECORDS.has(key) && Number(value.toString("latin1")) > epoch) {
      out.push([key, String(epoch)]);
      changed = true;
    } else out.push([key, value]);
  }
  return changed ? encodePaxRecords(out) : undefined;
}

/** A transform from a tar stream to the same tar with its times clamped to `epoch` (seconds). */
export class TarTimestampClamp extends Transform {
  private state: "header" | "data" | "pax" | "trailer" = "header";
  private held: Buffer[] = [];
  private heldLength = 0;
  /** Bytes of entry data (with padding) still to pass through, in "data". */
  private remaining = 0;
  /** The PAX header whose data is being gathered, in "pax", and that data's length. */
  private paxHeader?: Buffer;
  private paxSize = 0;

  constructor(private readonly epoch: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consume(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    // A tar cut short (or one without the end-of-archive blocks) is passed on as it came.
    if (this.heldLength > 0) this.push(Buffer.concat(this.held, this.heldLength));
    if (this.paxHeader) this.push(this.paxHeader);
    cb();
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.state === "trailer") {
        this.push(chunk.subarray(off));
        return;
      }
      if (this.state === "data") {
        const n = Math.min(this.remaining, chunk.length - off);
        this.push(chunk.subarray(off, off + n));
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = "header";
        continue;
      }
      const want = (this.state === "header" ? BLOCK : roundUp(this.paxSize)) - this.heldLength;
      const n = Math.min(want, chunk.length - off);
      this.held.push(chunk.subarray(off, off + n));
      this.heldLength += n;
      off += n;
      if (n < want) return;
      const gathered = Buffer.concat(this.held, this.heldLength);
      this.held = [];
      this.heldLength = 0;
      if (this.state === "header") this.onHeader(gathered);
      else this.onPaxData(gathered);
    }
  }

  private onHeader(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      this.push(block);
      this.state = "trailer";
      return;
    }
    if (!checksumOk(block))
      throw new Error("rewrite-timestamp: the layer is not a valid tar (bad header checksum)");
    const type = String.fromCharCode(block[TYPEFLAG]!);
    const size = readNumber(block, SIZE.offset, SIZE.size);
    if (type === "x" || type === "g") {
      this.paxHeader = block;
      this.paxSize = size;
      this.state = "pax";
      if (size === 0) this.onPaxData(Buffer.alloc(0));
      return;
    }
    if (clampHeaderTime(block, this.epoch)) writeChecksum(block);
    this.push(block);
    const data = HEADER_ONLY.has(type) ? 0 : roundUp(size);
    if (data > 0) {
      this.remaining = data;
      this.state = "data";
    } else this.state = "header";
  }

  private onPaxData(data: Buffer): void {
    const header = this.paxHeader!;
    this.paxHeader = undefined;
    this.state = "header";
    const records = clampPaxRecords(data.subarray(0, this.paxSize), this.epoch);
    let changed = clampHeaderTime(header, this.epoch);
    if (records) {
      writeOctal(header, SIZE.offset, SIZE.size, records.length);
      changed = true;
    }
    if (changed) writeChecksum(header);
    this.push(header);
    if (records) {
      this.push(records);
      this.push(Buffer.alloc(roundUp(records.length) - records.length));
    } else this.push(data);
  }
}
