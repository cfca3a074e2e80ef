// The engine of the builder a command runs on. Until builder selection lands in the client,
// that is the embedded builder: the engine in this process, with its state on this machine.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { openEngine } from "../engine/engine.js";
import type { BuildEngine } from "../engine/types.js";

/** Where the embedded builder keeps its state: $KILN_STATE, else $XDG_DATA_HOME/kiln or ~/.local/share/kiln. */
export function embeddedStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_STATE) return resolve(env.KILN_STATE);
  return join(env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "kiln");
}

/** Runs `fn` with the selected builder's engine and closes it afterwards. */
export async function withSelectedEngine<T>(
  env: NodeJS.ProcessEnv,
  fn: (engine: BuildEngine) => Promise<T>,
): Promise<T> {
  const engine = await openEngine({ stateDir: embeddedStateDir(env) });
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}
