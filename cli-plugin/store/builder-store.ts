// The builder store on disk, under `<docker config>/kiln/` (Buildx's layout under `buildx/`):
//   instances/<name>   one builder (NodeGroup) as JSON
//   current            the builder last selected with `use`: {key, name, global}
//   defaults/<key>     the builder `use --default` made the default for one Docker endpoint
//   activity/<name>    when a builder was last used (ISO time)
// Every file is replaced atomically (temp file + rename), so readers never see half a file and
// need no lock; every change is made under the store's lock, so concurrent CLIs never lose one.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomically } from "../../src/fs/atomic-write.js";
import { withFileLock } from "../../src/fs/file-lock.js";
import { dockerConfigDir } from "../plugin.js";
import { DEFAULT_BUILDER, type NodeGroup, parseNodeGroup, validateName } from "./node-group.js";

export interface CurrentSelection {
  /** The Docker endpoint the selection was made for. */
  readonly key: string;
  readonly name: string;
  /** Made with `use --global`: applies whatever the Docker endpoint. */
  readonly global: boolean;
}

export function storeRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(dockerConfigDir(env), "kiln");
}

/** Reads of the store: safe without the lock, because writes are atomic renames. */
export class BuilderStore {
  constructor(readonly root: string) {}

  static forEnv(env: NodeJS.ProcessEnv = process.env): BuilderStore {
    return new BuilderStore(storeRoot(env));
  }

  /** Runs `fn` holding the store's lock; changes go through the transaction it is given. */
  async transaction<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    await mkdir(this.root, { recursive: true, mode: 0o755 });
    return withFileLock(join(this.root, ".lock"), () => fn(new StoreTransaction(this.root)));
  }

  async list(): Promise<NodeGroup[]> {
    let names: string[];
    try {
      names = await readdir(join(this.root, "instances"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const groups: NodeGroup[] = [];
    for (const n of names.filter((x) => !x.includes(".tmp-")).sort()) {
      const ng = await this.get(n);
      if (ng) groups.push(ng);
    }
    return groups;
  }

  async get(name: string): Promise<NodeGroup | undefined> {
    const n = validateName(name);
    const file = join(this.root, "instances", n);
    const text = await readOptional(file);
    return text === undefined ? undefined : parseNodeGroup(text, file);
  }

  /** The builder selected for Docker endpoint `key`, or undefined for the default builder. */
  async current(key: string): Promise<string | undefined> {
    const text = await readOptional(join(this.root, "current"));
    if (text) {
      const cur = parseCurrent(text);
      if (cur && (cur.global || cur.key === key)) return cur.name || undefined;
    }
    const def = await readOptional(join(this.root, "defaults", endpointFileName(key)));
    return def?.trim() || undefined;
  }

  /** When the builder was last used, if ever. */
  async lastActivity(name: string): Promise<Date | undefined> {
    const text = await readOptional(join(this.root, "activity", validateName(name)));
    if (!text) return undefined;
    const d = new Date(text.trim());
    return Number.isNaN(d.getTime()) ? undefined : d;
  }
}

/** Changes to the store, made while holding its lock. */
export class StoreTransaction extends BuilderStore {
  async save(ng: NodeGroup): Promise<void> {
    const name = validateName(ng.name);
    await writeAtomic(join(this.root, "instances", name), `${JSON.stringify({ ...ng, name }, null, 2)}\n`);
  }

  /** Removes a builder, and any selection of it. */
  async remove(name: string): Promise<void> {
    const n = validateName(name);
    await rm(join(this.root, "instances", n), { force: true });
    await rm(join(this.root, "activity", n), { force: true });
    const text = await readOptional(join(this.root, "current"));
    const cur = text ? parseCurrent(text) : undefined;
    if (cur?.name === n) await rm(join(this.root, "current"), { force: true });
    const defaultsDir = join(this.root, "defaults");
    for (const f of await readdir(defaultsDir).catch(() => [] as string[])) {
      if ((await readOptional(join(defaultsDir, f)))?.trim() === n)
        await rm(join(defaultsDir, f), { force: true });
    }
  }

  /**
   * Selects `name` (undefined: the default builder) for Docker endpoint `key`; `global` for every
   * endpoint; `makeDefault` also remembers it as this endpoint's default when another is selected.
   */
  async setCurrent(
    key: string,
    name: string | undefined,
    global: boolean,
    makeDefault: boolean,
  ): Promise<void> {
    const n = name && name !== DEFAULT_BUILDER ? validateName(name) : "";
    const cur: CurrentSelection = { key, name: n, global };
    await writeAtomic(join(this.root, "current"), `${JSON.stringify(cur)}\n`);
    const defFile = join(this.root, "defaults", endpointFileName(key));
    if (makeDefault) {
      if (n) await writeAtomic(defFile, `${n}\n`);
      else await rm(defFile, { force: true });
    }
  }

  async touchActivity(name: string, when: Date = new Date()): Promise<void> {
    await writeAtomic(join(this.root, "activity", validateName(name)), `${when.toISOString()}\n`);
  }
}

/** Endpoint keys are URLs; files are named by their hash (as Buildx does). */
function endpointFileName(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 32);
}

function parseCurrent(text: string): CurrentSelection | undefined {
  try {
    const c = JSON.parse(text) as Partial<CurrentSelection>;
    if (typeof c.key === "string" && typeof c.name === "string")
      return { key: c.key, name: c.name, global: !!c.global };
  } catch {
    // A damaged selection falls back to the default builder rather than breaking every command.
  }
  return undefined;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

async function writeAtomic(file: string, text: string): Promise<void> {
  await mkdir(join(file, ".."), { recursive: true, mode: 0o755 });
  await writeFileAtomically(file, text, { mode: 0o644, durable: true });
}
