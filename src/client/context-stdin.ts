// `kiln build -`: what comes on stdin, told apart as Docker tells it — a tar archive (plain, or
// gzip, bzip2, xz or zstd compressed, known by its first bytes) is the build context, unpacked by
// the client into a directory it then sends like any other; anything else is a Dockerfile, built
// with an empty context (`docker build - < Dockerfile`).
import { spawn } from "node:child_process";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { extractTarToDir } from "../archive/extract-dir.js";

export type ArchiveCompression = "none" | "gzip" | "bzip2" | "xz" | "zstd";

/** How many leading bytes decide: two tar blocks, as Buildx peeks. */
export const STDIN_HEAD_SIZE = 1024;

const MAGIC: readonly (readonly [Exclude<ArchiveCompression, "none">, readonly number[]])[] = [
  ["bzip2", [0x42, 0x5a, 0x68]],
  ["gzip", [0x1f, 0x8b, 0x08]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

const TAR_BLOCK = 512;
const CHECKSUM_OFFSET = 148;
const CHECKSUM_LENGTH = 8;

/**
 * Whether `block` is a tar header: its checksum field (octal) matches the sum of its bytes with
 * the field counted as spaces — unsigned, or signed as some old tars wrote it.
 */
function isTarHeader(block: Uint8Array): boolean {
  if (block.length < TAR_BLOCK) return false;
  const field = Buffer.from(block.subarray(CHECKSUM_OFFSET, CHECKSUM_OFFSET + CHECKSUM_LENGTH))
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  const recorded = Number.parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= CHECKSUM_OFFSET && i < CHECKSUM_OFFSET + CHECKSUM_LENGTH ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return recorded === unsigned || recorded === signed;
}

/** The archive the head of a stream starts, or undefined when it is not one (then: a Dockerfile). */
export function detectArchive(head: Uint8Array): ArchiveCompression | undefined {
  for (const [kind, magic] of MAGIC)
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return kind;
  return isTarHeader(head.subarray(0, TAR_BLOCK)) ? "none" : undefined;
}

/** The external programs Docker also falls back on, for the formats Node's zlib cannot read. */
const DECOMPRESSORS: Readonly<Record<"bzip2" | "xz" | "zstd", { program: string; package: string }>> = {
  bzip2: { program: "bzip2", package: "bzip2" },
  xz: { program: "xz", package: "xz-utils" },
  zstd: { program: "zstd", package: "zstd" },
};

/**
 * A decompressing program's output. It ends only once the program has exited well: a program
 * that fails after some output (a damaged archive) fails the stream with what it said.
 */
function decompressWith(compression: "bzip2" | "xz" | "zstd", input: Readable): Readable {
  const { program, package: pkg } = DECOMPRESSORS[compression];
  const out = new PassThrough();
  const child = spawn(program, ["-d", "-c"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  child.on("error", (e: NodeJS.ErrnoException) => {
    out.destroy(
      e.code === "ENOENT"
        ? new Error(
            `the context on stdin is ${compression}-compressed and unpacking it needs the ${program} program: install ${pkg}, or send an uncompressed or gzip tar`,
          )
        : e,
    );
  });
  child.on("close", (code, signal) => {
    if (out.destroyed) return;
    if (code === 0) out.end();
    else
      out.destroy(
        new Error(
          `the ${compression} archive on stdin could not be decompressed: ${stderr.trim() || `${program} exited with ${code ?? signal}`}`,
        ),
      );
  });
  child.stdout.pipe(out, { end: false });
  // The unpacking may fail first (garbage decompressed so far) and leave: the program's own
  // failure then has no reader left to tell, and the program is stopped.
  out.on("error", () => {});
  out.on("close", () => {
    if (child.exitCode === null) child.kill();
  });
  // A decompressor that stops early (damaged input) closes its stdin: its exit says why.
  child.stdin.on("error", () => {});
  pipeline(input, child.stdin).catch(() => {});
  return out;
}

function decompressed(compression: ArchiveCompression, input: Readable): Readable {
  switch (compression) {
    case "none":
      return input;
    case "gzip": {
      // The pipeline hands an input failure on to the gunzip stream, which the unpacking reads.
      const gunzip = createGunzip();
      pipeline(input, gunzip).catch(() => {});
      return gunzip;
    }
    default:
      return decompressWith(compression, input);
  }
}

export type StdinContent =
  | { readonly kind: "archive"; readonly compression: ArchiveCompression }
  | { readonly kind: "dockerfile"; readonly text: string };

/** The stream from its start again: the head already read, then the rest. */
async function* replay(head: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}

/**
 * Reads stdin: an archive is unpacked into `dir` (which must exist and be empty; unsafe entries
 * are refused); any other content is returned as the Dockerfile's text.
 */
export async function readStdinContext(
  stdin: Readable | NodeJS.ReadableStream,
  dir: string,
): Promise<StdinContent> {
  const readable = stdin instanceof Readable ? stdin : new Readable().wrap(stdin);
  const it = readable[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const rest: AsyncIterator<Buffer> = {
    next: async () => {
      const r = await it.next();
      return r.done ? r : { done: false, value: Buffer.from(r.value) };
    },
  };
  const parts: Buffer[] = [];
  let size = 0;
  while (size < STDIN_HEAD_SIZE) {
    const r = await rest.next();
    if (r.done) break;
    parts.push(r.value);
    size += r.value.length;
  }
  const head = Buffer.concat(parts);
  const compression = detectArchive(head);
  const all = Readable.from(replay(head, rest), { objectMode: false });
  if (compression === undefined) {
    const chunks: Buffer[] = [];
    for await (const c of all) chunks.push(c as Buffer);
    return { kind: "dockerfile", text: Buffer.concat(chunks).toString("utf8") };
  }
  try {
    await extractTarToDir(decompressed(compression, all), dir);
  } catch (e) {
    const what = compression === "none" ? "tar" : `${compression}-compressed tar`;
    throw new Error(`failed to unpack the build context from stdin (a ${what}): ${(e as Error).message}`, {
      cause: e,
    });
  }
  return { kind: "archive", compression };
}
