// Test fixtures for file trees: build one from a compact description, and read one back into a
// comparable description (types, modes, owners, contents, link targets, mtimes, hard links).
import {
  chmod,
  lchown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export type FixtureNode =
  | string
  | {
      readonly file: string | Buffer;
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
      readonly mtime?: number;
    }
  | {
      readonly dir: true;
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
      readonly mtime?: number;
    }
  | { readonly symlink: string }
  | { readonly hardlink: string };

/** Creates the described paths under root, parents first; "a/b" keys are relative to root. */
export async function writeTree(root: string, tree: Readonly<Record<string, FixtureNode>>): Promise<void> {
  const dirTimes: [string, number][] = [];
  for (const [rel, node] of Object.entries(tree)) {
    const path = join(root, rel);
    await mkdir(dirname(path), { recursive: true });
    if (typeof node === "string") await writeFile(path, node);
    else if ("file" in node) {
      await writeFile(path, node.file);
      if (node.mode !== undefined) await chmod(path, node.mode);
      if (node.uid !== undefined) await lchown(path, node.uid, node.gid ?? node.uid);
      if (node.mtime !== undefined) await utimes(path, node.mtime, node.mtime);
    } else if ("dir" in node) {
      await mkdir(path, { recursive: true });
      if (node.mode !== undefined) await chmod(path, node.mode);
      if (node.uid !== undefined) await lchown(path, node.uid, node.gid ?? node.uid);
      if (node.mtime !== undefined) dirTimes.push([path, node.mtime]);
    } else if ("symlink" in node) await symlink(node.symlink, path);
    else await link(join(root, node.hardlink), path);
  }
  for (const [path, t] of dirTimes.reverse()) await utimes(path, t, t);
}

export interface NodeSummary {
  readonly type: "file" | "dir" | "symlink" | "other";
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly content?: string;
  readonly target?: string;
  readonly mtimeMs?: number;
  readonly nlink?: number;
}

export interface ReadTreeOptions {
  readonly mtimes?: boolean;
}

/** The tree under root as {relPath: summary}; root itself under ".". */
export async function readTree(
  root: string,
  options: ReadTreeOptions = {},
): Promise<Record<string, NodeSummary>> {
  const out: Record<string, NodeSummary> = {};
  const visit = async (path: string, rel: string) => {
    const st = await lstat(path);
    const base = {
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      ...(options.mtimes && !st.isSymbolicLink() ? { mtimeMs: Math.floor(st.mtimeMs) } : {}),
    };
    if (st.isDirectory()) {
      out[rel] = { type: "dir", ...base };
      for (const name of (await readdir(path)).sort())
        await visit(join(path, name), rel === "." ? name : `${rel}/${name}`);
    } else if (st.isSymbolicLink())
      out[rel] = { type: "symlink", ...base, mode: 0, target: await readlink(path) };
    else if (st.isFile())
      out[rel] = {
        type: "file",
        ...base,
        content: (await readFile(path)).toString("base64"),
        nlink: st.nlink,
      };
    else out[rel] = { type: "other", ...base };
  };
  await visit(root, ".");
  return out;
}

/** A fresh temp directory per test, removed by `cleanup`. */
export class TempDirs {
  private readonly dirs: string[] = [];

  async make(prefix = "kiln-fileop-"): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  }
}
