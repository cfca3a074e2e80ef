// The changes between two full directory trees (a copy snapshot and its parent's), as layer
// entries: new and changed paths, whiteouts for removed ones, and the parent directories of
// every change. Unchanged files are recognised by metadata; content is compared only when
// timestamps are whole seconds (as tar extraction leaves them) and so cannot tell edits apart.
import type { BigIntStats } from "node:fs";
import { lstat, open, readlink } from "node:fs/promises";
import { join } from "node:path";
import type { LayerEntry } from "../archive/layer-entry.js";
import { candidateFor, type EntryCandidate, layerXattrs, sortedNames, withHardLinks } from "./fs-entries.js";

function sameXattrs(a: ReadonlyMap<string, Buffer>, b: ReadonlyMap<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || !v.equals(w)) return false;
  }
  return true;
}

function fileType(st: BigIntStats): number {
  return Number(st.mode & 0o170000n);
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, "r"), open(b, "r")]);
  try {
    const size = 64 * 1024;
    const ba = Buffer.alloc(size);
    const bb = Buffer.alloc(size);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size, null), fb.read(bb, 0, size, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/** Whether a non-directory at the same path, of the same type, is unchanged. */
async function sameNonDir(up: string, ust: BigIntStats, low: string, lst: BigIntStats): Promise<boolean> {
  if (ust.mode !== lst.mode || ust.uid !== lst.uid || ust.gid !== lst.gid) return false;
  if (ust.isSymbolicLink()) return (await readlink(up)) === (await readlink(low));
  if (ust.isCharacterDevice() || ust.isBlockDevice()) {
    if (ust.rdev !== lst.rdev) return false;
  }
  if (ust.isFile()) {
    if (ust.size !== lst.size || ust.mtimeNs !== lst.mtimeNs) return false;
    if (ust.mtimeNs % 1_000_000_000n === 0n && !(await sameContent(up, low))) return false;
  }
  return sameXattrs(await layerXattrs(up), await layerXattrs(low));
}

/** Every entry of a tree that is wholly new. */
async function allOf(dir: string, rel: string, out: EntryCandidate[]): Promise<void> {
  for (const name of await sortedNames(dir)) {
    const host = join(dir, name);
    const path = rel === "" ? name : `${rel}/${name}`;
    const st = await lstat(host, { bigint: true });
    const c = await candidateFor(path, host, st);
    if (!c) continue;
    out.push(c);
    if (st.isDirectory()) await allOf(host, path, out);
  }
}

function whiteout(path: string): EntryCandidate {
  return { entry: { path, kind: "whiteout", mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 } };
}

/** The changes under `rel`, appended to `out` in layer order. */
async function compareDirs(upper: string, lower: string, rel: string, out: EntryCandidate[]): Promise<void> {
  const up = join(upper, rel);
  const low = join(lower, rel);
  const upNames = await sortedNames(up);
  const lowNames = new Set(await sortedNames(low));
  const names = [...new Set([...upNames, ...lowNames])].sort((a, b) =>
    Buffer.compare(Buffer.from(a), Buffer.from(b)),
  );
  const upSet = new Set(upNames);
  for (const name of names) {
    const path = rel === "" ? name : `${rel}/${name}`;
    if (!upSet.has(name)) {
      out.push(whiteout(path));
      continue;
    }
    const uHost = join(upper, path);
    const ust = await lstat(uHost, { bigint: true });
    const lst = lowNames.has(name) ? await lstat(join(lower, path), { bigint: true }) : undefined;
    if (!lst || fileType(lst) !== fileType(ust)) {
      // New, or replaced by another kind of file: extraction removes what was there.
      const c = await candidateFor(path, uHost, ust);
      if (!c) continue;
      out.push(c);
      if (ust.isDirectory()) await allOf(uHost, path, out);
      continue;
    }
    if (ust.isDirectory()) {
      const children: EntryCandidate[] = [];
      await compareDirs(upper, lower, path, children);
      const xattrs = await layerXattrs(uHost);
      const metaChanged =
        ust.mode !== lst.mode ||
        ust.mtimeNs !== lst.mtimeNs ||
        ust.uid !== lst.uid ||
        ust.gid !== lst.gid ||
        !sameXattrs(xattrs, await layerXattrs(join(lower, path)));
      if (metaChanged || children.length > 0) {
        const c = await candidateFor(path, uHost, ust, xattrs);
        if (c) out.push(c, ...children);
      }
      continue;
    }
    if (!(await sameNonDir(uHost, ust, join(lower, path), lst))) {
      const c = await candidateFor(path, uHost, ust);
      if (c) out.push(c);
    }
  }
}

/** The layer entries turning `lower` (or an empty tree) into `upper`. */
export async function* treeDiffEntries(upper: string, lower: string | undefined): AsyncGenerator<LayerEntry> {
  const candidates: EntryCandidate[] = [];
  if (lower === undefined) await allOf(upper, "", candidates);
  else await compareDirs(upper, lower, "", candidates);
  yield* withHardLinks(
    (async function* () {
      yield* candidates;
    })(),
  );
}
