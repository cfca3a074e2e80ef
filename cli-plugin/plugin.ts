// The Docker CLI plugin protocol: metadata, plugin-mode argument handling, installation.
import { mkdirSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { KILN_VERSION } from "../src/version.js";

export const PLUGIN_NAME = "kiln";
export const METADATA_COMMAND = "docker-cli-plugin-metadata";

export interface PluginMetadata {
  SchemaVersion: "0.1.0";
  Vendor: string;
  Version: string;
  ShortDescription: string;
  URL: string;
}

export function pluginMetadata(): PluginMetadata {
  return {
    SchemaVersion: "0.1.0",
    Vendor: "Kiln",
    Version: `v${KILN_VERSION}`,
    ShortDescription: "Kiln: build container images (BuildKit-class engine)",
    URL: "https://github.com/kiln-build/kiln",
  };
}

/**
 * The arguments for the command line parser. The Docker CLI runs the plugin as
 * `docker-kiln [global flags] kiln ARGS…` with DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND set;
 * standalone it is `kiln ARGS…`.
 */
export function commandArgs(argv: readonly string[], env: NodeJS.ProcessEnv): string[] {
  const args = argv.slice(2);
  const invokedAsPlugin =
    env.DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND !== undefined || /docker-kiln$/.test(argv[1] ?? "");
  if (!invokedAsPlugin) return args;
  const at = args.indexOf(PLUGIN_NAME);
  return at >= 0 ? args.slice(at + 1) : args;
}

/** The Docker CLI config directory: $DOCKER_CONFIG or ~/.docker. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG ? resolve(env.DOCKER_CONFIG) : join(homedir(), ".docker");
}

/** Links `docker-kiln` into the Docker CLI's plugin directory (atomically replacing an old link). */
export function installPlugin(kilnExecutable: string, env: NodeJS.ProcessEnv = process.env): string {
  const dir = join(dockerConfigDir(env), "cli-plugins");
  mkdirSync(dir, { recursive: true });
  const target = join(dir, "docker-kiln");
  const tmp = `${target}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(resolve(kilnExecutable), tmp);
  renameSync(tmp, target);
  return target;
}

/** bin/kiln, found from the bundle's location (dist/kiln.js → ../bin/kiln). */
export function kilnExecutablePath(bundlePath: string): string {
  return resolve(dirname(bundlePath), "..", "bin", "kiln");
}
