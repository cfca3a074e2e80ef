// Who owns what a file action writes: ChownOpt ids taken as they are, names looked up in the
// /etc/passwd and /etc/group of a root filesystem (read scoped to it), as BuildKit's readUser does.
import { readFile } from "node:fs/promises";
import { resolveInRoot } from "../../fs/scoped-path.js";
import type { ChownOpt } from "../../llb/ops.js";
import { FileOpError } from "./errors.js";

export interface FileOwner {
  readonly uid: number;
  readonly gid: number;
}

/**
 * The owner for a ChownOpt, or undefined to keep source ownership. A user given by id also sets
 * the group to the same id, a user given by name brings its primary group, and an explicit group
 * overrides either, as BuildKit decides.
 */
export async function resolveOwner(
  chown: ChownOpt | undefined,
  lookupRoot: string | undefined,
): Promise<FileOwner | undefined> {
  if (!chown || (!chown.user && !chown.group)) return undefined;
  let uid = 0;
  let gid = 0;
  const user = chown.user;
  if (user) {
    const id = user.id ?? numericName(user.name);
    if (id !== undefined) {
      uid = id;
      gid = id;
    } else if (user.name !== undefined) {
      const entry = (await readDatabase(lookupRoot, "/etc/passwd", "user", user.name)).find(
        (fields) => fields[0] === user.name,
      );
      if (!entry) throw unknownName("user", user.name, "/etc/passwd");
      uid = parseId(entry[2], "/etc/passwd");
      gid = parseId(entry[3], "/etc/passwd");
    }
  }
  const group = chown.group;
  if (group) {
    const id = group.id ?? numericName(group.name);
    if (id !== undefined) gid = id;
    else if (group.name !== undefined) {
      const entry = (await readDatabase(lookupRoot, "/etc/group", "group", group.name)).find(
        (fields) => fields[0] === group.name,
      );
      if (!entry) throw unknownName("group", group.name, "/etc/group");
      gid = parseId(entry[2], "/etc/group");
    }
  }
  return { uid, gid };
}

function numericName(name: string | undefined): number | undefined {
  return name !== undefined && /^[0-9]+$/.test(name) ? Number(name) : undefined;
}

async function readDatabase(
  root: string | undefined,
  file: string,
  kind: "user" | "group",
  name: string,
): Promise<string[][]> {
  if (root === undefined)
    throw new FileOpError(`unable to find ${kind} ${name}: no filesystem to look up ${file} in`);
  let text: string;
  try {
    text = await readFile(await resolveInRoot(root, file), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new FileOpError(
        `unable to find ${kind} ${name}: ${file} does not exist in the image; use a numeric id`,
      );
    throw err;
  }
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => line.split(":"));
}

function parseId(field: string | undefined, file: string): number {
  if (field === undefined || !/^[0-9]+$/.test(field))
    throw new FileOpError(`malformed entry in ${file}: bad id ${JSON.stringify(field)}`);
  return Number(field);
}

function unknownName(kind: "user" | "group", name: string, file: string): FileOpError {
  return new FileOpError(
    `unable to find ${kind} ${name}: no matching entries in ${kind === "user" ? "passwd" : "group"} file ${file}`,
  );
}
