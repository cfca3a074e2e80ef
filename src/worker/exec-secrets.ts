// Secrets and SSH agents for one RUN step. Secret values are fetched from the client's session
// at run time into a tmpfs that exists only while the step runs — never onto the engine's disk,
// into a layer or into the cache — and are masked in the step's log. SSH agent requests from the
// step are relayed to the client's agent over the session.
import { chmod, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:net";
import { join } from "node:path";
import type { ExecMeta, SecretMount, SshMount } from "../llb/ops.js";
import { closeServer, listenSshAgentRelay } from "../session/ssh-agent-relay.js";
import type { BuildSession } from "../session/types.js";
import { mountSpec, unmountAllUnder } from "../snapshot/mount.js";
import type { ContainerMount } from "./types.js";

export class SecretNotFoundError extends Error {
  override name = "SecretNotFoundError";
}

export interface ExecSecrets {
  readonly mounts: readonly ContainerMount[];
  /** `NAME=value` entries for `RUN --mount=type=secret,env=NAME`. */
  readonly env: readonly string[];
  /** Replaces every secret value in a log chunk with `****`. */
  mask(data: Buffer): Buffer;
  close(): Promise<void>;
}

const NONE: ExecSecrets = { mounts: [], env: [], mask: (d) => d, close: async () => {} };

export async function openExecSecrets(
  scratchDir: string,
  secretMounts: readonly SecretMount[],
  sshMounts: readonly SshMount[],
  meta: ExecMeta,
  session: BuildSession | undefined,
): Promise<ExecSecrets> {
  const secretEnv = meta.secretEnv ?? [];
  if (secretMounts.length === 0 && sshMounts.length === 0 && secretEnv.length === 0) return NONE;
  const dir = await mkdtemp(join(scratchDir, "secrets-"));
  // tmpfs: the values live in memory only, and vanish with the unmount.
  await mountSpec(
    { type: "tmpfs", source: "tmpfs", options: ["size=4m", "mode=0700", "nosuid", "nodev", "noexec"] },
    dir,
  );
  const servers: Server[] = [];
  const values: Buffer[] = [];
  const close = async () => {
    await Promise.all(servers.map(closeServer));
    await unmountAllUnder(dir);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const getSecret = async (id: string, optional: boolean): Promise<Buffer | undefined> => {
      const v = await session?.getSecret(id);
      if (v === undefined && !optional)
        throw new SecretNotFoundError(
          `secret ${id}: not found (pass it with --secret id=${id},src=FILE or env=VAR)`,
        );
      if (v !== undefined && v.length > 0) values.push(v);
      return v;
    };
    const mounts: ContainerMount[] = [];
    for (const [i, m] of secretMounts.entries()) {
      const value = await getSecret(m.secretId, m.optional);
      if (value === undefined) continue;
      const file = join(dir, `secret-${i}`);
      await writeFile(file, value, { mode: 0o600 });
      await chown(file, m.uid, m.gid);
      await chmod(file, m.mode);
      mounts.push({
        dest: m.dest,
        mounts: [{ type: "bind", source: file, options: ["rbind", "ro"] }],
        readonly: true,
      });
    }
    const env: string[] = [];
    for (const s of secretEnv) {
      const value = await getSecret(s.id, s.optional);
      if (value !== undefined) env.push(`${s.name}=${value.toString("utf8")}`);
    }
    for (const [i, m] of sshMounts.entries()) {
      if (!session?.hasSsh(m.sshId)) {
        if (m.optional) continue;
        throw new SecretNotFoundError(
          `no SSH key ${JSON.stringify(m.sshId)} forwarded from the client (use --ssh ${m.sshId})`,
        );
      }
      const sock = join(dir, `ssh-${i}.sock`);
      servers.push(await listenSshAgentRelay(session, m.sshId, sock));
      await chown(sock, m.uid, m.gid);
      await chmod(sock, m.mode);
      mounts.push({
        dest: m.dest,
        mounts: [{ type: "bind", source: sock, options: ["rbind"] }],
        readonly: false,
      });
    }
    const mask = (data: Buffer): Buffer => {
      if (values.length === 0) return data;
      let text = data.toString("utf8");
      for (const v of values) text = text.split(v.toString("utf8")).join("****");
      return Buffer.from(text);
    };
    return { mounts, env, mask, close };
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}
