// The embedded driver: the default builder when no other is selected. The engine runs inside the
// CLI's own process, with its state under $KILN_STATE (else ~/.local/share/kiln); there is no
// daemon to start, stop or dial.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Duplex } from "node:stream";
import { openEngine } from "../../src/engine/engine.js";
import type { BuildEngine } from "../../src/engine/types.js";
import { KILN_VERSION } from "../../src/version.js";
import {
  type Driver,
  type DriverFactory,
  type DriverFeatures,
  type DriverInfo,
  engineFeatures,
  type InitConfig,
  type RemoveOptions,
  validateDriverOptions,
} from "../driver.js";

/** Where the embedded builder keeps its state: $KILN_STATE, else $XDG_DATA_HOME/kiln or ~/.local/share/kiln. */
export function embeddedStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_STATE) return resolve(env.KILN_STATE);
  return join(env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "kiln");
}

export const embeddedFactory: DriverFactory = {
  name: "embedded",
  usage: () => "embedded: the engine runs inside the kiln process (the default builder)",
  priority: () => 0,
  // The default builder is implicit: there is nothing to create.
  allowsInstances: false,
  options: [],
  create(config: InitConfig): Driver {
    validateDriverOptions(this, config.driverOpts);
    return new EmbeddedDriver(config);
  },
};

export class EmbeddedDriver implements Driver {
  readonly factory = embeddedFactory;

  constructor(readonly config: InitConfig) {}

  /** Where the engine keeps its state. */
  get stateDir(): string {
    return embeddedStateDir(this.config.env);
  }

  async bootstrap(): Promise<void> {}

  async info(): Promise<DriverInfo> {
    return { status: "running" };
  }

  async version(): Promise<string> {
    return `v${KILN_VERSION}`;
  }

  async stop(): Promise<void> {}

  async rm(_opts: RemoveOptions): Promise<void> {
    throw new Error("the default builder cannot be removed");
  }

  async dial(): Promise<Duplex> {
    throw new Error(
      "the default builder runs inside kiln and has no engine API to dial: create a builder with `kiln create` and select it",
    );
  }

  engine(): Promise<BuildEngine> {
    // As Docker's own builder: RUN --network=host is allowed (with --allow), privileged steps are not.
    return openEngine({ stateDir: this.stateDir, allowedEntitlements: ["network.host"] });
  }

  features(): DriverFeatures {
    return engineFeatures(false);
  }
}
