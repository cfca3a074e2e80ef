// The SSH agent a git source over ssh authenticates with: the client's agent named by
// `git.mountsshsock` (the frontend asks for `default`), relayed from the session to a socket on the
// engine's host for the duration of one git command, as BuildKit mounts it for its git source.
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:net";
import { join } from "node:path";
import { GitAttr } from "../llb/source-attrs.js";
import { closeServer, listenSshAgentRelay } from "../session/ssh-agent-relay.js";
import type { BuildSession } from "../session/types.js";
import { redactCredentials } from "./git-command.js";
import { GitSourceError } from "./git-source-spec.js";

export interface GitSessionAgent {
  /** The socket to hand git as SSH_AUTH_SOCK; undefined when the source needs no agent. */
  readonly sshAuthSock?: string;
  close(): Promise<void>;
}

const NO_AGENT: GitSessionAgent = { close: async () => {} };

/**
 * Opens the relay to the client's agent when the source asks for one. Without a session (the
 * engine used as a library) git runs without an agent; a session that forwards no such agent is an
 * error, since the remote would only refuse the key-less login later with a vaguer message.
 */
export async function openGitSessionAgent(
  identifier: string,
  attrs: Readonly<Record<string, string>>,
  session: BuildSession | undefined,
  scratchDir: string,
): Promise<GitSessionAgent> {
  const id = attrs[GitAttr.mountSshSock];
  if (!id || !session) return NO_AGENT;
  if (!session.hasSsh(id)) {
    const remote = redactCredentials(attrs[GitAttr.fullUrl] ?? identifier);
    throw new GitSourceError(
      `git remote ${remote} is reached over ssh, but the client forwarded no SSH agent ${JSON.stringify(id)}: pass --ssh ${id} (with SSH_AUTH_SOCK set, or --ssh ${id}=AGENT_SOCKET)`,
    );
  }
  const dir = await mkdtemp(join(scratchDir, "git-agent-"));
  let server: Server;
  try {
    server = await listenSshAgentRelay(session, id, join(dir, "agent.sock"));
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    sshAuthSock: join(dir, "agent.sock"),
    close: async () => {
      await closeServer(server);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
