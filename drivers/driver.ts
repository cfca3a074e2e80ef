// The driver interface: how a node's engine is hosted and reached. A factory validates a node's
// configuration and makes a driver; a driver boots, reports, stops and removes its engine and
// opens connections to it. Drivers know nothing about builds.
import type { Duplex } from "node:stream";
import type { BuildEngine } from "../src/engine/types.js";
import type { Platform } from "../src/oci/platform.js";

export type DriverStatus = "inactive" | "starting" | "running" | "stopping" | "stopped";

export interface DriverInfo {
  readonly status: DriverStatus;
  /** Why the status is what it is, when that helps the user (an unreachable endpoint). */
  readonly detail?: string;
}

/** What a node can do with a build's results; a missing one fails with Buildx's message. */
export interface DriverFeatures {
  readonly ociExporter: boolean;
  readonly dockerExporter: boolean;
  readonly cacheExport: boolean;
  readonly multiPlatform: boolean;
  readonly directPush: boolean;
  /** Builds without an output load their image into the Docker daemon. */
  readonly defaultLoad: boolean;
}

export type DriverFeature = keyof DriverFeatures;

/** What Kiln's engine can do with a build's results, whichever driver hosts it. */
export function engineFeatures(defaultLoad: boolean): DriverFeatures {
  return {
    ociExporter: true,
    dockerExporter: true,
    cacheExport: true,
    multiPlatform: true,
    directPush: true,
    defaultLoad,
  };
}

const FEATURE_NAMES: Record<DriverFeature, string> = {
  ociExporter: "OCI exporter",
  dockerExporter: "Docker exporter",
  cacheExport: "Cache export",
  multiPlatform: "Multi-platform build",
  directPush: "Direct push",
  defaultLoad: "Automatically load images to the Docker Engine image store",
};

/** Throws Buildx's "<Feature> is not supported for the <driver> driver" unless the driver has it. */
export function requireFeature(driver: Driver, feature: DriverFeature): void {
  if (driver.features()[feature]) return;
  throw new Error(
    `${FEATURE_NAMES[feature]} is not supported for the ${driver.factory.name} driver.\n` +
      `Switch to a different driver, or turn on the containerd image store, and try again.`,
  );
}

/** Everything a factory needs to make a node's driver. */
export interface InitConfig {
  /** The node's name (unique in its builder); names the node's container, volume, pods. */
  readonly name: string;
  /** Where the engine is hosted: a Docker context or host URL, an engine address. */
  readonly endpoint: string;
  readonly driverOpts: Readonly<Record<string, string>>;
  readonly platforms: readonly Platform[];
  /** Engine daemon flags. */
  readonly flags: readonly string[];
  /** Contents of the engine's configuration file (create --config). */
  readonly configFile?: string;
  /** Environment the driver resolves Docker contexts and state directories from. */
  readonly env: NodeJS.ProcessEnv;
}

export interface DriverOption {
  /** The key, or a prefix ending in "." for families such as `env.NAME`. */
  readonly key: string;
  readonly description: string;
  /** Throws an error naming the key when `value` is not acceptable. */
  readonly validate?: (value: string, key: string) => void;
}

export interface DriverFactory {
  readonly name: string;
  usage(): string;
  /** How well the driver suits an endpoint when none was named (higher wins; 0: not at all). */
  priority(endpoint: string): number;
  /** Whether `create` may make instances of it (the embedded builder is implicit). */
  readonly allowsInstances: boolean;
  readonly options: readonly DriverOption[];
  /** Validates the configuration (driver options, endpoint) and makes the node's driver. */
  create(config: InitConfig): Driver;
}

export interface RemoveOptions {
  /** Remove even if in use (a running engine is killed rather than stopped). */
  readonly force: boolean;
  /** Keep the engine's state (cache, images) for a later builder of the same node name. */
  readonly keepState: boolean;
  /** Keep the engine itself running; only forget it. */
  readonly keepDaemon: boolean;
}

export interface Driver {
  readonly factory: DriverFactory;
  readonly config: InitConfig;
  /** Starts the engine (creating what hosts it if needed) and waits until it answers. */
  bootstrap(log?: (line: string) => void): Promise<void>;
  info(): Promise<DriverInfo>;
  /** The engine's version (`v0.1.0`), asking a running engine. */
  version(): Promise<string>;
  stop(force: boolean): Promise<void>;
  rm(opts: RemoveOptions): Promise<void>;
  /** A byte stream to the engine's API (what `dial-stdio` relays). */
  dial(): Promise<Duplex>;
  /** A client of the node's engine; the caller closes it. */
  engine(): Promise<BuildEngine>;
  features(): DriverFeatures;
}

export class DriverOptionError extends Error {
  override name = "DriverOptionError";
}

/**
 * Checks driver options against a factory's list: unknown keys are errors that name the valid
 * ones, and each known option's value is validated.
 */
export function validateDriverOptions(factory: DriverFactory, opts: Readonly<Record<string, string>>): void {
  for (const [key, value] of Object.entries(opts)) {
    const option = factory.options.find((o) =>
      o.key.endsWith(".") ? key.startsWith(o.key) && key.length > o.key.length : o.key === key,
    );
    if (!option) {
      const valid = factory.options.map((o) => (o.key.endsWith(".") ? `${o.key}<name>` : o.key)).join(", ");
      throw new DriverOptionError(
        `invalid driver option ${JSON.stringify(key)} for ${factory.name} driver: valid options are ${valid || "none"}`,
      );
    }
    option.validate?.(value, key);
  }
}

/** Validators shared by drivers. */
export const optionValidators = {
  boolean(value: string, key: string): void {
    if (!/^(1|0|t|f|true|false|TRUE|FALSE|True|False)$/.test(value)) {
      throw new DriverOptionError(
        `invalid value ${JSON.stringify(value)} for driver option ${key}: expected true or false`,
      );
    }
  },
  integer(value: string, key: string): void {
    if (!/^-?\d+$/.test(value)) {
      throw new DriverOptionError(
        `invalid value ${JSON.stringify(value)} for driver option ${key}: expected an integer`,
      );
    }
  },
  nonEmpty(value: string, key: string): void {
    if (value.trim() === "") throw new DriverOptionError(`driver option ${key} needs a value`);
  },
};

export function parseBooleanOption(value: string | undefined): boolean {
  return value !== undefined && /^(1|t|true)$/i.test(value);
}
