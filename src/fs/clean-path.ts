// Lexical path cleaning with Go's filepath.Clean rules, which BuildKit applies to every path and
// pattern; node's path.normalize differs (keeps trailing slashes, turns "" into ".").

/** Go's filepath.Clean for slash-separated paths: "a//b/./c/.." → "a/b", "" → ".", "/.." → "/". */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  if (rooted) return `/${joined}`;
  return joined === "" ? "." : joined;
}

/** The components of a path inside a root: "/a/../b/" → ["b"]; never contains "." or "..". */
export function rootedComponents(p: string): string[] {
  const cleaned = cleanPath(`/${p}`);
  return cleaned === "/" ? [] : cleaned.slice(1).split("/");
}

/** Go's filepath.Split: ("a/b/c") → ["a/b/", "c"]; ("a/b/") → ["a/b/", ""]. */
export function splitDirBase(p: string): [string, string] {
  const i = p.lastIndexOf("/");
  return [p.slice(0, i + 1), p.slice(i + 1)];
}
