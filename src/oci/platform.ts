// Platforms (os/architecture/variant) as BuildKit and containerd normalise and match them.
import { arch as nodeArch } from "node:os";

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: "amd64",
  "x86-64": "amd64",
  x64: "amd64",
  aarch64: "arm64",
  armhf: "arm",
  armel: "arm",
  i386: "386",
  i686: "386",
};

/** Normalises as containerd's `platforms.Normalize`: arch aliases, arm64's default v8, arm's default v7. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  architecture = ARCH_ALIASES[architecture] ?? architecture;
  if (p.architecture.toLowerCase() === "armel" && !variant) variant = "v6";
  if (architecture === "arm64") {
    if (variant === "8" || variant === "v8") variant = undefined;
  } else if (architecture === "arm") {
    if (!variant || variant === "7") variant = "v7";
    else if (variant === "5" || variant === "6" || variant === "8") variant = `v${variant}`;
  } else if (architecture === "amd64" && variant === "v1") {
    variant = undefined;
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Parses `os/arch[/variant]` (or a bare `arch`, or `local`), normalised. */
export function parsePlatform(spec: string): Platform {
  const s = spec.trim();
  if (s === "") throw new Error("empty platform: expected os/arch[/variant], e.g. linux/amd64");
  if (s === "local") return hostPlatform();
  const parts = s.split("/");
  if (parts.length > 3 || parts.some((x) => x === "" || !/^[A-Za-z0-9_.-]+$/.test(x))) {
    throw new Error(`invalid platform ${JSON.stringify(spec)}: expected os/arch[/variant], e.g. linux/arm64`);
  }
  if (parts.length === 1) {
    const known = ["linux", "windows", "darwin", "freebsd"];
    if (known.includes(parts[0]!.toLowerCase()))
      return normalizePlatform({ os: parts[0]!, architecture: hostPlatform().architecture });
    return normalizePlatform({ os: "linux", architecture: parts[0]! });
  }
  return normalizePlatform({ os: parts[0]!, architecture: parts[1]!, variant: parts[2] });
}

/** `linux/arm64`, `linux/arm/v7`. */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The `os_arch[_variant]` folder name Buildx uses when splitting local outputs per platform. */
export function platformDirName(p: Platform): string {
  return formatPlatform(p).replaceAll("/", "_");
}

export function samePlatform(a: Platform, b: Platform): boolean {
  return formatPlatform(normalizePlatform(a)) === formatPlatform(normalizePlatform(b));
}

/** The platform of the machine the engine runs on. */
export function hostPlatform(): Platform {
  return normalizePlatform({ os: "linux", architecture: nodeArch() });
}

/**
 * Whether an image built for `candidate` can serve a request for `wanted`, as containerd's
 * platform matcher does: same os and arch; variants compatible (arm/v7 runs v6 and v5 images).
 */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (w.variant === c.variant) return true;
  if (w.architecture === "arm" && w.variant && c.variant) {
    return Number(c.variant.slice(1)) <= Number(w.variant.slice(1));
  }
  if (w.architecture === "amd64") return !c.variant || c.variant === "v1";
  return false;
}

/** Ranks candidates the way BuildKit picks a manifest from an index: exact variant first. */
export function bestPlatformMatch<T extends { platform?: Platform }>(
  wanted: Platform,
  items: readonly T[],
): T | undefined {
  const w = normalizePlatform(wanted);
  let best: T | undefined;
  let bestScore = -1;
  for (const item of items) {
    if (!item.platform || !platformMatches(w, item.platform)) continue;
    const c = normalizePlatform(item.platform);
    const score = c.variant === w.variant ? 100 : Number(c.variant?.slice(1) ?? 0);
    if (score > bestScore) {
      best = item;
      bestScore = score;
    }
  }
  return best;
}
