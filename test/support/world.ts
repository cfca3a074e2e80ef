// Reads test/world/env, written by test/world/up: how tests reach the test world's services.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const WORLD_ENV_FILE = join(REPO_ROOT, "test", "world", "env");

export interface TestWorld {
  /** Plain HTTP registry on loopback, host:port (KILN_TEST_REGISTRY). */
  readonly registry: string;
  /** HTTPS registry with basic auth on loopback, host:port (KILN_TEST_REGISTRY_TLS). */
  readonly registryTls: string;
  readonly registryUser: string;
  readonly registryPassword: string;
  /** The CA that signed the HTTPS registry's certificate (KILN_TEST_CA); also in certs.d. */
  readonly caFile: string;
  /** The busybox image index (linux/amd64 + linux/arm64) in the plain registry, host:port/busybox:latest. */
  readonly busybox: string;
  /** The same index in the HTTPS registry. */
  readonly busyboxTls: string;
  /** The same index as an OCI image layout directory, tagged "latest". */
  readonly busyboxOci: string;
  /** The index's digest, sha256:… */
  readonly busyboxDigest: string;
  /** dockerd's address, unix:///var/run/docker.sock. */
  readonly dockerHost: string;
  /** Every KILN_TEST_* variable, e.g. to pass to a child process's environment. */
  readonly env: Readonly<Record<string, string>>;
}

/** Parses KEY=value lines (optionally quoted); comments and blank lines are skipped. */
export function parseWorldEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2]!.trim();
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) value = value.slice(1, -1);
    env[m[1]!] = value;
  }
  return env;
}

/** The running test world. Throws if test/world/up has not written test/world/env. */
export function loadWorld(file: string = WORLD_ENV_FILE): TestWorld {
  if (!existsSync(file))
    throw new Error(`${file} is missing: run test/world/up first (as root; npm test does)`);
  const env = parseWorldEnv(readFileSync(file, "utf8"));
  const get = (k: string) => {
    const v = env[k];
    if (!v) throw new Error(`${file} has no ${k}: run test/world/up again`);
    return v;
  };
  return {
    registry: get("KILN_TEST_REGISTRY"),
    registryTls: get("KILN_TEST_REGISTRY_TLS"),
    registryUser: get("KILN_TEST_REGISTRY_USER"),
    registryPassword: get("KILN_TEST_REGISTRY_PASSWORD"),
    caFile: get("KILN_TEST_CA"),
    busybox: get("KILN_TEST_BUSYBOX"),
    busyboxTls: get("KILN_TEST_BUSYBOX_TLS"),
    busyboxOci: get("KILN_TEST_BUSYBOX_OCI"),
    busyboxDigest: get("KILN_TEST_BUSYBOX_DIGEST"),
    dockerHost: get("KILN_TEST_DOCKER_HOST"),
    env: Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith("KILN_TEST_"))),
  };
}

/** A Docker config.json's content that logs in to the world's HTTPS registry, as `docker login` writes it. */
export function registryLoginConfig(world: TestWorld): { auths: Record<string, { auth: string }> } {
  const auth = Buffer.from(`${world.registryUser}:${world.registryPassword}`).toString("base64");
  return { auths: { [world.registryTls]: { auth } } };
}
