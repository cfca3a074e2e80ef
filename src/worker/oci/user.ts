// Resolves a RUN step's user (`name`, `uid`, `name:group`, `uid:gid`) against the rootfs's passwd and group files.
import { readFile } from "node:fs/promises";
import { isNotFound, resolveInRoot } from "./root-path.js";

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (only when the group was not given explicitly, as runc and BuildKit do). */
  readonly additionalGids: readonly number[];
  /** From passwd; `/` when the user has no entry. */
  readonly home: string;
}

const MAX_ID = 2 ** 31 - 1;

function parseId(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/** Parses /etc/passwd text; malformed lines are skipped as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    const uid = parseId(f[2] ?? "");
    const gid = parseId(f[3] ?? "");
    if (f.length < 4 || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5] || "/" });
  }
  return out;
}

/** Parses /etc/group text; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    const gid = parseId(f[2] ?? "");
    if (f.length < 3 || gid === undefined) continue;
    const members = (f[3] ?? "")
      .split(",")
      .map((m) => m.trim())
      .filter((m) => m !== "");
    out.push({ name: f[0]!, gid, members });
  }
  return out;
}

/**
 * Resolves `spec` with the semantics of runc's `GetExecUser`: a name must exist in passwd; a numeric
 * uid may be absent (gid then defaults to 0); an explicit group replaces the primary group and drops
 * supplementary groups; otherwise every group listing the user as a member is added.
 */
export function resolveUserFromEntries(
  spec: string,
  passwd: readonly PasswdEntry[] | undefined,
  groups: readonly GroupEntry[] | undefined,
): ResolvedUser {
  const trimmed = spec.trim();
  const colon = trimmed.indexOf(":");
  const userPart = colon < 0 ? trimmed : trimmed.slice(0, colon);
  const groupPart = colon < 0 ? "" : trimmed.slice(colon + 1);
  if (colon >= 0 && groupPart === "") {
    throw new Error(`invalid user ${JSON.stringify(spec)}: the group after ":" is empty`);
  }

  let uid = 0;
  let gid = 0;
  let home = "/";
  let name: string | undefined;
  if (userPart !== "") {
    const numericUid = parseId(userPart);
    const entry = passwd?.find(
      (e) => e.name === userPart || (numericUid !== undefined && e.uid === numericUid),
    );
    if (entry) {
      ({ uid, gid, home, name } = entry);
    } else if (numericUid !== undefined) {
      uid = numericUid;
    } else if (!passwd) {
      throw new Error(`unable to find user ${userPart}: the image has no /etc/passwd; use a numeric uid`);
    } else {
      throw new Error(`unable to find user ${userPart}: no matching entries in /etc/passwd`);
    }
  }

  if (groupPart !== "") {
    const numericGid = parseId(groupPart);
    const entry = groups?.find(
      (g) => g.name === groupPart || (numericGid !== undefined && g.gid === numericGid),
    );
    if (entry) gid = entry.gid;
    else if (numericGid !== undefined) gid = numericGid;
    else if (!groups)
      throw new Error(`unable to find group ${groupPart}: the image has no /etc/group; use a numeric gid`);
    else throw new Error(`unable to find group ${groupPart}: no matching entries in /etc/group`);
    return { uid, gid, additionalGids: [], home };
  }

  const additionalGids: number[] = [];
  if (name !== undefined) {
    for (const g of groups ?? []) {
      if (g.members.includes(name) && !additionalGids.includes(g.gid)) additionalGids.push(g.gid);
    }
  }
  return { uid, gid, additionalGids, home };
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Resolves `spec` against `<rootfs>/etc/passwd` and `<rootfs>/etc/group`, following symlinks only inside rootfs. */
export async function resolveUser(rootfs: string, spec: string): Promise<ResolvedUser> {
  const passwdText = await readOptional(await resolveInRoot(rootfs, "/etc/passwd"));
  const groupText = await readOptional(await resolveInRoot(rootfs, "/etc/group"));
  return resolveUserFromEntries(
    spec,
    passwdText === undefined ? undefined : parsePasswd(passwdText),
    groupText === undefined ? undefined : parseGroup(groupText),
  );
}
