// What `ls` and `inspect` show of a node: its status, and for a running engine its version and
// the platforms it builds. Each question has a deadline, so one unreachable node cannot hang the
// listing; its error is shown instead.

import type { DriverStatus } from "../../drivers/driver.js";
import type { EngineInfo } from "../../src/engine/types.js";
import { formatPlatform } from "../../src/oci/platform.js";
import type { BuilderNode } from "./resolve-builder.js";

export interface NodeReport {
  readonly status: DriverStatus | "error";
  readonly version?: string;
  /** Declared platforms first (marked `*` in ls), then those the engine reports. */
  readonly platforms: readonly { readonly platform: string; readonly declared: boolean }[];
  /** The running engine's garbage-collection rules. */
  readonly gcPolicy?: EngineInfo["gcPolicy"];
  readonly error?: string;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(ms / 1000)}s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export async function reportNode(node: BuilderNode, timeoutMs = 20_000): Promise<NodeReport> {
  const declared = node.platforms.map((p) => ({ platform: formatPlatform(p), declared: true }));
  let status: DriverStatus;
  try {
    const info = await withDeadline(node.driver.info(), timeoutMs, node.name);
    status = info.status;
    if (info.detail && status === "inactive") return { status, platforms: declared, error: info.detail };
  } catch (err) {
    return { status: "error", platforms: declared, error: (err as Error).message };
  }
  if (status !== "running") return { status, platforms: declared };
  try {
    const engine = await withDeadline(node.driver.engine(), timeoutMs, node.name);
    try {
      const info = await withDeadline(engine.info(), timeoutMs, node.name);
      const platforms = [...declared];
      for (const p of [...info.nativePlatforms, ...info.emulatedPlatforms]) {
        const s = formatPlatform(p);
        if (!platforms.some((x) => x.platform === s)) platforms.push({ platform: s, declared: false });
      }
      return { status, version: `v${info.version.replace(/^v/, "")}`, platforms, gcPolicy: info.gcPolicy };
    } finally {
      await engine.close();
    }
  } catch (err) {
    return { status: "error", platforms: declared, error: (err as Error).message };
  }
}
