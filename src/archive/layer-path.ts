// Tar entry names made safe to join to a root: cleaned lexically, with any ".." that would climb
// above the root rejected (a leading "/" means the root itself, as Docker treats it).

export class UnsafeLayerEntryError extends Error {
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`unsafe layer entry ${JSON.stringify(entry)}: ${reason}; the layer was not applied`);
    this.name = "UnsafeLayerEntryError";
  }
}

/** The components of `name` below the root ([] for the root itself); throws if it escapes. */
export function layerPathComponents(name: string, entryForErrors = name): string[] {
  if (name.includes("\0")) throw new UnsafeLayerEntryError(entryForErrors, "the name contains a NUL byte");
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0)
        throw new UnsafeLayerEntryError(entryForErrors, "the path climbs out of the layer root");
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

/** "a/b/c" for a clean relative path; "" for the root. */
export function cleanLayerPath(name: string, entryForErrors = name): string {
  return layerPathComponents(name, entryForErrors).join("/");
}
