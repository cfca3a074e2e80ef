// The http source (`ADD https://…`): its cache-key material and the file it produces. As BuildKit
// does, a pinned `http.checksum` is the key without asking the server; otherwise the body's digest
// is, found with a conditional request against what earlier downloads of the URL remembered, so an
// unchanged file is never downloaded twice. The file gets the name, mode, owner and mtime BuildKit
// gives it.
import { chmod, chown, copyFile, mkdir, rm, utimes } from "node:fs/promises";
import { join, posix } from "node:path";
import { HttpAttr } from "../llb/source-attrs.js";
import { type Digest, sha256Digest } from "../oci/digest.js";
import { KILN_VERSION } from "../version.js";
import type { HttpDownloadRecord, HttpSourceCache } from "./http-source-cache.js";
import {
  HttpSourceError,
  type HttpSourceResponse,
  headerValue,
  requestHttpSource,
} from "./http-source-request.js";

export { HttpSourceError } from "./http-source-request.js";

/** A secret's value by id, or undefined when the client has none (BuildSession.getSecret). */
export type SecretLookup = (id: string) => Promise<Buffer | undefined>;

/** BuildKit's default secret names for http sources, per host. */
const AUTH_HEADER_SECRET_PREFIX = "HTTP_AUTH_HEADER_";
const AUTH_TOKEN_SECRET_PREFIX = "HTTP_AUTH_TOKEN_";
/** BuildKit's name when neither the attrs, the server nor the URL name the file. */
const DEFAULT_FILENAME = "download";

export interface HttpSourceSpec {
  readonly url: string;
  readonly checksum?: Digest;
  readonly filename?: string;
  readonly perm: number;
  readonly uid: number;
  readonly gid: number;
  readonly authHeaderSecret?: string;
}

/** Go's strconv.ParseInt(v, 0, 64), which BuildKit uses for numeric attrs: 0x, 0o, 0b, leading-0 octal. */
function parseIntBase0(v: string, attr: string): number {
  const s = v.trim().replaceAll("_", "");
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) throw new Error(`invalid ${attr} value ${JSON.stringify(v)}: expected an integer`);
  const body = m[2]!;
  let n: number;
  if (/^0[xX]/.test(body)) n = Number.parseInt(body.slice(2), 16);
  else if (/^0[oO]/.test(body)) n = Number.parseInt(body.slice(2), 8);
  else if (/^0[bB]/.test(body)) n = Number.parseInt(body.slice(2), 2);
  else if (body.length > 1 && body.startsWith("0")) n = Number.parseInt(body.slice(1), 8);
  else n = Number.parseInt(body, 10);
  return m[1] === "-" ? -n : n;
}

function parseDecimal(v: string, attr: string): number {
  if (!/^[+-]?[0-9]+$/.test(v.trim()))
    throw new Error(`invalid ${attr} value ${JSON.stringify(v)}: expected a number`);
  return Number.parseInt(v, 10);
}

/** The http source an op names: the URL is the identifier itself, options are attrs. */
export function parseHttpSource(identifier: string, attrs: Readonly<Record<string, string>>): HttpSourceSpec {
  if (!identifier.startsWith("http://") && !identifier.startsWith("https://"))
    throw new Error(`not an http source: ${identifier}`);
  const checksum = attrs[HttpAttr.checksum];
  if (checksum !== undefined && checksum !== "" && !/^sha256:[a-f0-9]{64}$/.test(checksum))
    throw new Error(
      `invalid checksum ${JSON.stringify(checksum)} for ${identifier}: expected sha256:<64 hex digits>`,
    );
  const perm = attrs[HttpAttr.perm];
  const uid = attrs[HttpAttr.uid];
  const gid = attrs[HttpAttr.gid];
  return {
    url: identifier,
    checksum: checksum ? (checksum as Digest) : undefined,
    filename: attrs[HttpAttr.filename] || undefined,
    perm: perm ? parseIntBase0(perm, HttpAttr.perm) : 0,
    uid: uid ? parseDecimal(uid, HttpAttr.uid) : 0,
    gid: gid ? parseDecimal(gid, HttpAttr.gid) : 0,
    authHeaderSecret: attrs[HttpAttr.authHeaderSecret] || undefined,
  };
}

/** BuildKit's SafeFileName: the last path element, and never one that could leave the directory. */
function safeFileName(s: string): string {
  const name = posix.basename(s.trim());
  if (name === "" || name === "." || name === ".." || name === "/") return DEFAULT_FILENAME;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return DEFAULT_FILENAME;
  return name;
}

/** The `filename` parameter of a Content-Disposition header (RFC 6266, with RFC 5987 `filename*`). */
export function contentDispositionFilename(header: string): string | undefined {
  const star = /;\s*filename\*\s*=\s*([^']*)'[^']*'([^;]*)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[2]!.trim());
    } catch {
      // fall through to the plain parameter
    }
  }
  const plain = /;\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/i.exec(header);
  if (!plain) return undefined;
  const v = plain[1] !== undefined ? plain[1].replace(/\\(.)/g, "$1") : plain[2]!;
  return v === "" ? undefined : v;
}

/** The file's name as BuildKit picks it: the attr, else the server's proposal, else the URL's last segment. */
export function httpSourceFileName(spec: HttpSourceSpec, dispositionName?: string): string {
  if (spec.filename) return safeFileName(spec.filename);
  if (dispositionName && !dispositionName.endsWith("/")) return safeFileName(dispositionName);
  let base = "";
  try {
    base = posix.basename(decodeURIComponent(new URL(spec.url).pathname));
  } catch {
    base = "";
  }
  return safeFileName(base === "/" ? "" : base);
}

/** The key under which a URL's downloads are remembered; different credentials do not share. */
function urlKey(spec: HttpSourceSpec): string {
  return JSON.stringify({ url: spec.url, authHeaderSecret: spec.authHeaderSecret ?? "" });
}

async function requestHeaders(
  spec: HttpSourceSpec,
  getSecret?: SecretLookup,
): Promise<Record<string, string>> {
  const headers: Record<string, string> = { "User-Agent": `kiln/${KILN_VERSION}` };
  if (spec.authHeaderSecret) {
    const v = getSecret ? await getSecret(spec.authHeaderSecret) : undefined;
    if (v === undefined)
      throw new HttpSourceError(
        `failed to retrieve HTTP auth secret ${spec.authHeaderSecret} for ${spec.url}: the build has no such secret`,
        spec.url,
      );
    headers.Authorization = v.toString("utf8");
    return headers;
  }
  if (!getSecret) return headers;
  const host = new URL(spec.url).hostname;
  const header = await getSecret(AUTH_HEADER_SECRET_PREFIX + host);
  if (header !== undefined) headers.Authorization = header.toString("utf8");
  const token = await getSecret(AUTH_TOKEN_SECRET_PREFIX + host);
  if (token !== undefined) headers.Authorization = `Bearer ${token.toString("utf8")}`;
  return headers;
}

function etagValue(v: string | undefined): string | undefined {
  if (v === undefined || v === "") return undefined;
  return v.startsWith("W/") ? v.slice(2) : v;
}

function failOnStatus(res: HttpSourceResponse, url: string): void {
  if (res.status >= 200 && res.status < 400) return;
  res.body.resume();
  const via = res.url !== url ? ` (redirected to ${res.url})` : "";
  throw new HttpSourceError(
    `failed to download ${url}${via}: server answered ${res.status} ${res.body.statusMessage ?? ""}`.trimEnd(),
    url,
    res.status,
  );
}

/**
 * Which remembered download a 200/304 answer confirms: by ETag, or (a 304 with no ETag) the one
 * asked about — the single ETag sent, or the Last-Modified sent when no ETag was known.
 */
function confirmedRecord(
  res: HttpSourceResponse,
  records: readonly HttpDownloadRecord[],
  asked: { onlyEtag?: string; modifiedSince?: HttpDownloadRecord },
): HttpDownloadRecord | undefined {
  let etag = etagValue(headerValue(res.headers, "etag"));
  if (etag === undefined && res.status === 304) {
    if (asked.onlyEtag !== undefined) etag = asked.onlyEtag;
    else if (asked.modifiedSince) return asked.modifiedSince;
  }
  if (etag === undefined) return undefined;
  return records.find((r) => r.etag === etag);
}

/**
 * Finds what the URL serves now: a remembered download the server confirms unchanged (HEAD first,
 * as some servers mishandle conditional GETs), else a fresh download stored in the cache.
 */
async function resolveDownload(
  spec: HttpSourceSpec,
  cache: HttpSourceCache,
  getSecret?: SecretLookup,
  signal?: AbortSignal,
): Promise<HttpDownloadRecord> {
  const key = urlKey(spec);
  const records = await cache.records(key);
  const headers = await requestHeaders(spec, getSecret);
  const etags = [...new Set(records.flatMap((r) => (r.etag !== undefined ? [r.etag] : [])))];
  const asked: { onlyEtag?: string; modifiedSince?: HttpDownloadRecord } = {};
  if (etags.length > 0) {
    headers["If-None-Match"] = etags.join(", ");
    if (etags.length === 1) asked.onlyEtag = etags[0];
  } else {
    const dated = records.find((r) => r.lastModified !== undefined);
    if (dated) {
      headers["If-Modified-Since"] = dated.lastModified!;
      asked.modifiedSince = dated;
    }
  }

  if (records.length > 0) {
    try {
      const head = await requestHttpSource(spec.url, "HEAD", headers, signal);
      head.body.resume();
      if (head.status === 200 || head.status === 304) {
        const hit = confirmedRecord(head, records, asked);
        if (hit) return hit;
      }
    } catch (e) {
      if (signal?.aborted) throw e;
      // Servers that refuse HEAD still answer the GET below.
    }
  }

  const res = await requestHttpSource(spec.url, "GET", headers, signal);
  failOnStatus(res, spec.url);
  if (res.status === 304) {
    res.body.resume();
    const hit = confirmedRecord(res, records, asked);
    if (!hit)
      throw new HttpSourceError(
        `${spec.url} answered 304 Not Modified for a version this engine does not have (ETag ${JSON.stringify(headerValue(res.headers, "etag") ?? "")})`,
        spec.url,
        304,
      );
    return hit;
  }
  const { digest, size } = await cache.storeBody(res.body);
  const disposition = headerValue(res.headers, "content-disposition");
  const record: HttpDownloadRecord = {
    digest,
    size,
    etag: etagValue(headerValue(res.headers, "etag")),
    lastModified: headerValue(res.headers, "last-modified") || undefined,
    dispositionName: disposition ? contentDispositionFilename(disposition) : undefined,
  };
  await cache.remember(key, record);
  return record;
}

function verifyChecksum(spec: HttpSourceSpec, got: Digest): void {
  if (spec.checksum === undefined || spec.checksum === got) return;
  throw new HttpSourceError(
    `checksum mismatch for ${spec.url}: expected ${spec.checksum}, got ${got}`,
    spec.url,
  );
}

/** The mtime BuildKit gives the file: Last-Modified, else the Unix epoch. */
function modificationTime(record: HttpDownloadRecord): Date {
  if (record.lastModified) {
    const t = Date.parse(record.lastModified);
    if (!Number.isNaN(t)) return new Date(t);
  }
  return new Date(0);
}

/**
 * The cache-key material for an http source: `http.checksum` when pinned (no request made),
 * else a digest over what the URL serves now (body digest, file name, Last-Modified).
 */
export async function resolveHttpKey(
  identifier: string,
  attrs: Readonly<Record<string, string>>,
  cache: HttpSourceCache,
  getSecret?: SecretLookup,
  signal?: AbortSignal,
): Promise<string> {
  const spec = parseHttpSource(identifier, attrs);
  if (spec.checksum !== undefined) return spec.checksum;
  const record = await resolveDownload(spec, cache, getSecret, signal);
  cache.pinResolved(urlKey(spec), record);
  return sha256Digest(
    JSON.stringify({
      checksum: record.digest,
      filename: httpSourceFileName(spec, record.dispositionName),
      lastModified: record.lastModified ?? "",
    }),
  );
}

/**
 * Writes the http source's file into `destDir` (created if missing): the content the key was
 * resolved from when there was one, else what the URL serves now; checked against `http.checksum`.
 */
export async function fetchHttpToDir(
  identifier: string,
  attrs: Readonly<Record<string, string>>,
  destDir: string,
  cache: HttpSourceCache,
  getSecret?: SecretLookup,
  signal?: AbortSignal,
): Promise<void> {
  const spec = parseHttpSource(identifier, attrs);
  const key = urlKey(spec);
  let record = cache.pinnedRecord(key);
  if (
    !record ||
    (spec.checksum !== undefined && record.digest !== spec.checksum) ||
    !(await cache.hasBlob(record.digest))
  )
    record = await resolveDownload(spec, cache, getSecret, signal);
  verifyChecksum(spec, record.digest);

  const name = httpSourceFileName(spec, record.dispositionName);
  const dest = join(destDir, name);
  await mkdir(destDir, { recursive: true });
  await rm(dest, { force: true });
  await copyFile(cache.blobPath(record.digest), dest);
  await chmod(dest, spec.perm !== 0 ? spec.perm : 0o600);
  if (spec.uid !== 0 || spec.gid !== 0) await chown(dest, spec.uid, spec.gid);
  const mtime = modificationTime(record);
  await utimes(dest, mtime, mtime);
}
