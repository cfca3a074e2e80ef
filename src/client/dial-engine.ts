// Connects to an engine daemon. The gRPC client behind it is loaded on first use: it costs
// ~50 ms of start-up that commands which never dial an engine (builds on the default builder,
// `ls`, `version`) should not pay.
import type { BuildEngine } from "../engine/types.js";
import type { ConnectOptions, EngineTarget } from "./remote-engine.js";

export async function dialEngine(target: EngineTarget, opts?: ConnectOptions): Promise<BuildEngine> {
  const { connectEngine } = await import("./remote-engine.js");
  return connectEngine(target, opts);
}
