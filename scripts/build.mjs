// Bundles the CLI and the engine daemon into dist/ so that they start fast. The daemon is one file
// (the docker-container engine image ships exactly that file); the CLI is split so that what only
// some commands need (the gRPC client, the Docker API client) loads when they use it.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import * as esbuild from "esbuild";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
let commit = process.env.KILN_COMMIT ?? "";
if (!commit) {
  try {
    commit = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      encoding: "utf8",
    }).trim();
    if (dirty) commit += "-dirty";
  } catch {
    commit = "unknown";
  }
}

const common = {
  outdir: "dist",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  // Native addons and packages that load files relative to themselves stay outside the bundle.
  external: [
    "better-sqlite3",
    "@napi-rs/xattr",
    "ssh2",
    "cpu-features",
    "@grpc/grpc-js",
    "@grpc/proto-loader",
  ],
  banner: {
    js: "import { createRequire as __kilnCreateRequire } from 'node:module'; const require = __kilnCreateRequire(import.meta.url);",
  },
  define: {
    __KILN_VERSION__: JSON.stringify(pkg.version),
    __KILN_COMMIT__: JSON.stringify(commit),
  },
  logLevel: "warning",
};

// Chunks of an earlier build would otherwise pile up beside the new ones.
rmSync("dist/chunks", { recursive: true, force: true });
await Promise.all([
  esbuild.build({ ...common, entryPoints: { kilnd: "src/server/main.ts" } }),
  esbuild.build({
    ...common,
    entryPoints: { kiln: "cli-plugin/main.ts" },
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
  }),
]);
