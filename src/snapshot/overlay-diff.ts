// A snapshot's changes read straight from its overlay upper dir, which holds exactly them in
// overlay's format: 0/0 character devices are whiteouts, trusted.overlay.opaque=y marks a
// directory that hides what is below it. Copied-up parents are there too, as Docker's layers have them.
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { readXattrs } from "../archive/file-attrs.js";
import { isOverlayPrivateXattr, type LayerEntry } from "../archive/layer-entry.js";
import { candidateFor, type EntryCandidate, sortedNames, withHardLinks } from "./fs-entries.js";

export const OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque";

function marker(path: string, kind: "whiteout" | "opaque"): EntryCandidate {
  return { entry: { path, kind, mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 } };
}

async function* walkUpper(dir: string, rel: string): AsyncGenerator<EntryCandidate> {
  for (const name of await sortedNames(dir)) {
    const host = join(dir, name);
    const path = rel === "" ? name : `${rel}/${name}`;
    const st = await lstat(host, { bigint: true });
    if (st.isCharacterDevice() && st.rdev === 0n) {
      yield marker(path, "whiteout");
      continue;
    }
    const all = await readXattrs(host);
    const opaque = st.isDirectory() && all.get(OVERLAY_OPAQUE_XATTR)?.toString() === "y";
    for (const k of [...all.keys()]) if (isOverlayPrivateXattr(k)) all.delete(k);
    const candidate = await candidateFor(path, host, st, all);
    if (candidate) yield candidate;
    if (st.isDirectory()) {
      if (opaque) yield marker(path, "opaque");
      yield* walkUpper(host, path);
    }
  }
}

/** The layer entries of an overlay upper dir, in layer order. */
export function overlayUpperEntries(upper: string): AsyncGenerator<LayerEntry> {
  return withHardLinks(walkUpper(upper, ""));
}
