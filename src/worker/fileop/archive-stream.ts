// Opening local archives as Docker does for ADD: compression detected by magic bytes (gzip,
// bzip2, xz, zstd, or none), decompressed with zlib or the system's bzip2/xz/zstd tools.
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { FileOpError } from "./errors.js";

export type Compression = "none" | "gzip" | "bzip2" | "xz" | "zstd";

const MAGIC: readonly [Compression, readonly number[]][] = [
  ["bzip2", [0x42, 0x5a, 0x68]],
  ["gzip", [0x1f, 0x8b, 0x08]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

export function detectCompression(head: Uint8Array): Compression {
  for (const [kind, magic] of MAGIC) if (magic.every((b, i) => head[i] === b)) return kind;
  return "none";
}

export async function detectFileCompression(hostPath: string): Promise<Compression> {
  const fh = await open(hostPath, "r");
  try {
    const head = Buffer.alloc(6);
    const { bytesRead } = await fh.read(head, 0, 6, 0);
    return detectCompression(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** The decompressed bytes of a file; errors of the decompressor surface on the stream. */
export function openDecompressed(hostPath: string, compression: Compression, shownPath: string): Readable {
  if (compression === "none") return createReadStream(hostPath);
  if (compression === "gzip") {
    const gunzip = createGunzip();
    const file = createReadStream(hostPath);
    file.on("error", (err) => gunzip.destroy(err));
    gunzip.on("close", () => file.destroy());
    return file.pipe(gunzip);
  }
  const out = new PassThrough();
  const file = createReadStream(hostPath);
  const child = spawn(compression, ["-dc"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  child.on("error", (err: NodeJS.ErrnoException) => {
    out.destroy(
      err.code === "ENOENT"
        ? new FileOpError(`cannot decompress ${shownPath}: the ${compression} program is not installed`, "io")
        : err,
    );
  });
  file.on("error", (err) => out.destroy(err));
  // The consumer may stop early (format sniffing); a closed pipe is not an error then.
  child.stdin.on("error", () => {});
  file.pipe(child.stdin);
  child.stdout.pipe(out, { end: false });
  child.on("close", (code, signal) => {
    if (code === 0) out.end();
    else if (!out.destroyed && signal === null)
      out.destroy(
        new FileOpError(
          `cannot decompress ${shownPath} with ${compression}: ${stderr.trim() || `exit code ${code}`}`,
          "io",
        ),
      );
  });
  out.on("close", () => {
    if (child.exitCode === null) child.kill();
    file.destroy();
  });
  return out;
}

/** The first `n` bytes of a stream (fewer if it ends sooner); the stream is closed afterwards. */
export async function readPrefix(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= n) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, n);
}

/**
 * Whether a 512-byte block is a tar header: not all zeros, and its checksum field agrees with the
 * block's unsigned or signed byte sum, which is what Go's archive/tar accepts.
 */
export function isTarHeader(block: Uint8Array): boolean {
  if (block.length < 512) return false;
  if (block.subarray(0, 512).every((b) => b === 0)) return false;
  const field = Buffer.from(block.subarray(148, 156))
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  const expected = Number.parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return expected === unsigned || expected === signed;
}
