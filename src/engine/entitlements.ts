// Entitlements: RUN steps that use the host's network or run privileged need both the builder's
// permission (engine config) and the build's request (`--allow`), as in BuildKit.
import type { Definition } from "../llb/definition.js";

export type Entitlement = "network.host" | "security.insecure";

/** The entitlements a definition's steps need. */
export function requiredEntitlements(def: Definition): Set<Entitlement> {
  const out = new Set<Entitlement>();
  for (const v of def.vertices.values()) {
    if (v.op.kind !== "exec") continue;
    if (v.op.network === "host") out.add("network.host");
    if (v.op.security === "insecure") out.add("security.insecure");
  }
  return out;
}

export class EntitlementError extends Error {
  override name = "EntitlementError";
}

/** Fails unless every needed entitlement is both allowed by the engine and asked for by the build. */
export function checkEntitlements(
  needed: Iterable<Entitlement>,
  requested: readonly string[],
  allowedByEngine: readonly string[],
): void {
  for (const e of needed) {
    if (!requested.includes(e)) {
      throw new EntitlementError(
        `${e} is not allowed: this build needs it, so pass --allow ${e} (the builder must permit it too)`,
      );
    }
    if (!allowedByEngine.includes(e)) {
      throw new EntitlementError(
        `granting entitlement ${e} is not allowed by the builder's configuration: create the builder with --engine-flags '--allow-insecure-entitlement ${e}'`,
      );
    }
  }
}
