// Reads test/world/env, written by test/world/up: how tests reach the test world's services.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface TestWorld {
  /** Plain HTTP registry, host:port. */
  readonly registry: string;
  /** HTTPS registry with basic auth, host:port. */
  readonly registryTls: string;
  readonly registryUser: string;
  readonly registryPassword: string;
  /** The CA that signed the HTTPS registry's certificate. */
  readonly caFile: string;
  /** The busybox image index in the plain registry. */
  readonly busybox: string;
  /** The same index as an OCI layout directory. */
  readonly busyboxOci: string;
  readonly dockerHost: string;
}

export function loadWorld(): TestWorld {
  const file = join(REPO_ROOT, "test", "world", "env");
  if (!existsSync(file)) throw new Error(`${file} is missing: run test/world/up first (as root)`);
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  const get = (k: string) => {
    const v = env[k];
    if (v === undefined) throw new Error(`${file} has no ${k}: re-run test/world/up`);
    return v;
  };
  return {
    registry: get("KILN_TEST_REGISTRY"),
    registryTls: get("KILN_TEST_REGISTRY_TLS"),
    registryUser: get("KILN_TEST_REGISTRY_USER"),
    registryPassword: get("KILN_TEST_REGISTRY_PASSWORD"),
    caFile: get("KILN_TEST_CA"),
    busybox: get("KILN_TEST_BUSYBOX"),
    busyboxOci: get("KILN_TEST_BUSYBOX_OCI"),
    dockerHost: get("KILN_TEST_DOCKER_HOST"),
  };
}
