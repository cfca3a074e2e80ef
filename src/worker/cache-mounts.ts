// Persistent `RUN --mount=type=cache` directories, by id, with BuildKit's sharing modes:
// shared (used at once by every step), locked (one step at a time), private (a busy cache gives
// the next step a fresh directory of its own).
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import type { CacheSharing } from "../llb/ops.js";

export interface CacheMountLease {
  readonly path: string;
  release(): Promise<void>;
}

export class CacheMountStore {
  private readonly users = new Map<string, number>();
  private readonly locks = new Map<string, Promise<void>>();

  constructor(private readonly root: string) {}

  private dirFor(id: string): string {
    return join(this.root, createHash("sha256").update(id).digest("hex").slice(0, 32));
  }

  async acquire(
    id: string,
    sharing: CacheSharing,
    init: { mode?: number; uid?: number; gid?: number },
  ): Promise<CacheMountLease> {
    const dir = this.dirFor(id);
    const created = await mkdir(dir, { recursive: true });
    if (created !== undefined) {
      await chmod(dir, init.mode ?? 0o755);
      await chown(dir, init.uid ?? 0, init.gid ?? 0);
    }
    if (sharing === "private" && (this.users.get(dir) ?? 0) > 0) {
      const tmp = await mkdtemp(join(this.root, "private-"));
      await chmod(tmp, init.mode ?? 0o755);
      await chown(tmp, init.uid ?? 0, init.gid ?? 0);
      return { path: tmp, release: () => rm(tmp, { recursive: true, force: true }) };
    }
    let unlock = () => {};
    if (sharing === "locked") {
      const prev = this.locks.get(dir) ?? Promise.resolve();
      const mine = new Promise<void>((resolve) => {
        unlock = resolve;
      });
      const chained = prev.then(() => mine);
      this.locks.set(dir, chained);
      await prev;
    }
    this.users.set(dir, (this.users.get(dir) ?? 0) + 1);
    return {
      path: dir,
      release: async () => {
        this.users.set(dir, (this.users.get(dir) ?? 1) - 1);
        unlock();
      },
    };
  }
}
