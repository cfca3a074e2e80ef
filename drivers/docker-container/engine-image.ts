// The docker-container driver's engine image, assembled from the Kiln installed on this machine
// when no `image=` option names another: a scratch image holding this host's `node` and `runc`
// (and the mount and decompression tools the engine calls) with the shared libraries `ldd` lists
// for them, the kilnd bundle with the packages it loads at run time, and `/usr/local/bin/kilnd`.
// It is tagged `kiln/engine:<hash of its inputs>`, so it is built once per Kiln (and host) and
// reused until either changes. The image can only run on daemons of this host's architecture.
// Kiln writes the image itself — one layer, its config, a `docker save` archive — and the daemon
// only loads it: no builder is needed on the Docker host, local or reached over ssh://.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  createReadStream,
  createWriteStream,
  existsSync,
  readFileSync,
  realpathSync,
  statSync,
} from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, posix, relative } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type Docker from "dockerode";
import * as tarStream from "tar-stream";

export const ENGINE_IMAGE_REPO = "kiln/engine";
/** Where the Kiln bundle lives in the image. */
const KILN_DIR = "/opt/kiln";
/** Bumped when the layout below changes, so old images are not reused. */
const LAYOUT_VERSION = "kiln-engine-image/2";
/** Host programs the engine runs besides runc; those not installed are left out. */
const ENGINE_TOOLS = ["mount", "umount", "gzip", "xz", "zstd", "flock"];
/** Packages whose source and build leftovers are not needed at run time: keep only these paths. */
const PACKAGE_KEEP: Record<string, readonly string[]> = {
  "better-sqlite3": ["package.json", "lib", "build/Release/better_sqlite3.node"],
};

/** A bare import of a package (not a relative path, not a URL). */
const PACKAGE_SPECIFIER = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/\S*)?$/i;

export interface ImageFile {
  /** Absolute path in the image. */
  readonly path: string;
  /** Where its bytes come from on this host, or the bytes themselves. */
  readonly source: string | Buffer;
  readonly mode: number;
}

/** What the image runs with (its config's `config`). */
export interface EngineImageConfig {
  readonly Env: readonly string[];
  readonly Entrypoint: readonly string[];
  readonly Volumes: Readonly<Record<string, Record<string, never>>>;
  readonly Labels: Readonly<Record<string, string>>;
}

export interface EngineImagePlan {
  readonly tag: string;
  readonly files: readonly ImageFile[];
  readonly config: EngineImageConfig;
}

const ENGINE_IMAGE_CONFIG: EngineImageConfig = {
  Env: [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
  ],
  Entrypoint: ["/usr/local/bin/kilnd"],
  Volumes: { "/var/lib/kiln": {} },
  Labels: { "org.kiln.engine-image": "true" },
};

/** Directories the engine expects (with their modes) besides those of the files. */
const IMAGE_DIRS: readonly [string, number][] = [
  ["/tmp", 0o1777],
  ["/run/kiln", 0o755],
  ["/var/lib/kiln", 0o755],
  ["/etc/kiln", 0o755],
  ["/root", 0o755],
];

/** The directory of the installed Kiln: the nearest package.json named "kiln" above this module. */
export function kilnInstallDir(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "kiln") return dir;
      } catch {
        // Not ours; keep looking.
      }
    }
    if (dirname(dir) === dir) throw new Error(`cannot find the Kiln installation above ${from}`);
  }
}

/** Lists the image's files and computes its tag; reads (and hashes) every input. */
export async function planEngineImage(kilnDir: string = kilnInstallDir()): Promise<EngineImagePlan> {
  const files: ImageFile[] = [];
  const kilnd = join(kilnDir, "dist", "kilnd.js");
  if (!existsSync(kilnd)) throw new Error(`${kilnd} is missing: run \`npm run build\` in ${kilnDir} first`);
  files.push({ path: `${KILN_DIR}/dist/kilnd.js`, source: kilnd, mode: 0o644 });
  files.push({ path: `${KILN_DIR}/package.json`, source: Buffer.from('{"type":"module"}\n'), mode: 0o644 });
  for (const f of await listTree(join(kilnDir, "proto"))) {
    files.push({ path: posix.join(KILN_DIR, "proto", f), source: join(kilnDir, "proto", f), mode: 0o644 });
  }
  for (const pkgDir of runtimePackages(kilnDir, await readFile(kilnd, "utf8"))) {
    const name = relative(join(kilnDir, "node_modules"), pkgDir).split("/node_modules/").at(-1)!;
    const keep = PACKAGE_KEEP[name];
    for (const f of await listTree(
      pkgDir,
      (rel) => rel.split("/")[0] === "node_modules" || rel.startsWith(".bin"),
    )) {
      if (keep && !keep.some((k) => f === k || f.startsWith(`${k}/`))) continue;
      const src = join(pkgDir, f);
      files.push({
        path: posix.join(KILN_DIR, relative(kilnDir, src)),
        source: src,
        mode: statSync(src).mode & 0o777,
      });
    }
  }

  const programs: { path: string; host: string }[] = [
    { path: "/usr/local/bin/node", host: process.execPath },
  ];
  const runc = which("runc");
  if (!runc) throw new Error("runc is not installed: the engine image needs it (apt-get install runc)");
  programs.push({ path: "/usr/sbin/runc", host: runc });
  for (const tool of ENGINE_TOOLS) {
    const p = which(tool);
    if (p) programs.push({ path: `/usr/bin/${tool}`, host: p });
  }
  const libs = new Set<string>();
  for (const p of programs) {
    files.push({ path: p.path, source: realpathSync(p.host), mode: 0o755 });
    for (const lib of await sharedLibraries(p.host)) libs.add(lib);
  }
  for (const lib of libs) files.push({ path: lib, source: realpathSync(lib), mode: 0o755 });

  const caBundle = "/etc/ssl/certs/ca-certificates.crt";
  if (existsSync(caBundle)) files.push({ path: caBundle, source: caBundle, mode: 0o644 });
  files.push({
    path: "/etc/passwd",
    source: Buffer.from("root:x:0:0:root:/root:/usr/sbin/nologin\n"),
    mode: 0o644,
  });
  files.push({ path: "/etc/group", source: Buffer.from("root:x:0:\n"), mode: 0o644 });
  // The kernel runs the script with node: no shell is needed in the image.
  files.push({
    path: "/usr/local/bin/kilnd",
    source: Buffer.from(`#!/usr/local/bin/node\nimport("${KILN_DIR}/dist/kilnd.js");\n`),
    mode: 0o755,
  });
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const hash = createHash("sha256").update(LAYOUT_VERSION).update(JSON.stringify(ENGINE_IMAGE_CONFIG));
  for (const f of files) {
    hash.update(`\0${f.path}\0${f.mode}\0`);
    hash.update(typeof f.source === "string" ? await fileDigest(f.source) : f.source);
  }
  return {
    tag: `${ENGINE_IMAGE_REPO}:${hash.digest("hex").slice(0, 16)}`,
    files,
    config: ENGINE_IMAGE_CONFIG,
  };
}

/** Loads the image into `docker` unless it is already there; returns its tag. */
export async function ensureEngineImage(
  docker: Docker,
  log: (line: string) => void = () => {},
  kilnDir?: string,
): Promise<string> {
  const plan = await planEngineImage(kilnDir);
  try {
    await docker.getImage(plan.tag).inspect();
    return plan.tag;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  log(`loading engine image ${plan.tag}`);
  const work = await mkdtemp(join(tmpdir(), "kiln-engine-image-"));
  try {
    const layerFile = join(work, "layer.tar");
    const layer = await writeLayer(plan, layerFile);
    const archive = imageArchive(plan, layerFile, layer) as unknown as NodeJS.ReadableStream;
    const response = await docker.loadImage(archive, { quiet: true });
    const text = (await readAll(response)).toString("utf8");
    // The daemon reports a refused archive in the stream, not as an HTTP status.
    const failed = /"error(?:Detail)?"\s*:\s*(?:\{[^}]*"message"\s*:\s*)?"([^"]+)"/.exec(text);
    if (failed) throw new Error(`loading ${plan.tag} into Docker: ${failed[1]}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await removeOlderEngineImages(docker, plan.tag);
  return plan.tag;
}

/**
 * Each Kiln (and each rebuild of it) has its own engine image of ~130 MB: drop the ones of earlier
 * Kilns that no container uses any more, so that upgrades do not pile them up.
 */
async function removeOlderEngineImages(docker: Docker, current: string): Promise<void> {
  const images = await docker
    .listImages({ filters: JSON.stringify({ label: ["org.kiln.engine-image=true"] }) })
    .catch(() => []);
  for (const image of images) {
    if ((image.RepoTags ?? []).includes(current)) continue;
    // Refused while a container (a builder's engine) uses it: that one stays.
    await docker
      .getImage(image.Id)
      .remove()
      .catch(() => {});
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

interface WrittenLayer {
  /** sha256 of the uncompressed layer tar: the image's only diff ID. */
  readonly diffId: string;
  readonly size: number;
}

/** Writes the image's one layer (every file of the plan, under its directories) to `file`. */
async function writeLayer(plan: EngineImagePlan, file: string): Promise<WrittenLayer> {
  const pack = tarStream.pack();
  const dirs = new Set<string>();
  const dirModes = new Map(IMAGE_DIRS);
  const entry = (header: { name: string; mode: number; type?: "directory" }, body: Buffer | string = "") =>
    new Promise<void>((resolve, reject) => {
      pack.entry({ mtime: new Date(0), uid: 0, gid: 0, ...header }, body, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  const ensureDir = async (dir: string) => {
    if (dir === "/" || dirs.has(dir)) return;
    await ensureDir(posix.dirname(dir));
    dirs.add(dir);
    await entry({ name: `${dir.slice(1)}/`, type: "directory", mode: dirModes.get(dir) ?? 0o755 });
  };
  const hash = createHash("sha256");
  let size = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  const written = pipeline(pack, counted, createWriteStream(file));
  for (const [d] of IMAGE_DIRS) await ensureDir(d);
  for (const f of plan.files) {
    await ensureDir(posix.dirname(f.path));
    if (Buffer.isBuffer(f.source)) {
      await entry({ name: f.path.slice(1), mode: f.mode }, f.source);
      continue;
    }
    const bytes = (await stat(f.source)).size;
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry(
        { name: f.path.slice(1), mode: f.mode, size: bytes, mtime: new Date(0), uid: 0, gid: 0 },
        (err) => (err ? reject(err) : resolve()),
      );
      createReadStream(f.source as string)
        .on("error", reject)
        .pipe(sink);
    });
  }
  pack.finalize();
  await written;
  return { diffId: `sha256:${hash.digest("hex")}`, size };
}

/** A `docker save` archive of the image: its config, its layer and manifest.json naming the tag. */
export function imageArchive(plan: EngineImagePlan, layerFile: string, layer: WrittenLayer): tarStream.Pack {
  const config = Buffer.from(
    JSON.stringify({
      architecture: dockerArchitecture(),
      os: "linux",
      created: new Date(0).toISOString(),
      config: plan.config,
      rootfs: { type: "layers", diff_ids: [layer.diffId] },
      history: [{ created: new Date(0).toISOString(), created_by: `${LAYOUT_VERSION} (assembled by kiln)` }],
    }),
  );
  const configName = `${createHash("sha256").update(config).digest("hex")}.json`;
  const layerName = `${layer.diffId.slice("sha256:".length)}/layer.tar`;
  const manifest = JSON.stringify([{ Config: configName, RepoTags: [plan.tag], Layers: [layerName] }]);
  const pack = tarStream.pack();
  (async () => {
    const add = (name: string, body: Buffer | string) =>
      new Promise<void>((resolve, reject) =>
        pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body, (err) => (err ? reject(err) : resolve())),
      );
    await add(configName, config);
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry(
        { name: layerName, mode: 0o644, size: layer.size, mtime: new Date(0) },
        (err) => (err ? reject(err) : resolve()),
      );
      createReadStream(layerFile).on("error", reject).pipe(sink);
    });
    await add("manifest.json", manifest);
    pack.finalize();
  })().catch((err: Error) => pack.destroy(err));
  return pack;
}

/** This host's architecture in the image config's (GOARCH) spelling. */
function dockerArchitecture(): string {
  const arch: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "arm",
    ppc64: "ppc64le",
    s390x: "s390x",
  };
  return arch[process.arch] ?? process.arch;
}

/** The package directories kilnd loads at run time: the bare imports of its bundle, and their dependencies. */
export function runtimePackages(kilnDir: string, bundle: string): string[] {
  const builtins = new Set(builtinModules);
  const roots = new Set<string>();
  const specifiers =
    /^\s*import\s[^;"']*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)|\brequire\(\s*["']([^"']+)["']\s*\)/gm;
  for (const m of bundle.matchAll(specifiers)) {
    const spec = (m[1] ?? m[2] ?? m[3] ?? m[4])!;
    if (spec.startsWith("node:") || builtins.has(spec) || !PACKAGE_SPECIFIER.test(spec)) continue;
    const parts = spec.split("/");
    roots.add(spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!);
  }
  const found = new Set<string>();
  const visit = (name: string, fromDir: string) => {
    const dir = resolvePackageDir(name, fromDir, kilnDir);
    if (!dir) return false;
    if (found.has(dir)) return true;
    found.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      if (!visit(dep, dir))
        throw new Error(`${name} needs ${dep}, which is not installed: run npm install in ${kilnDir}`);
    }
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir);
    return true;
  };
  for (const r of roots) {
    if (!visit(r, kilnDir))
      throw new Error(`kilnd loads ${r}, which is not installed: run npm install in ${kilnDir}`);
  }
  return [...found].sort();
}

/** Node's lookup: node_modules beside the requiring package, then up to the installation's. */
function resolvePackageDir(name: string, fromDir: string, kilnDir: string): string | undefined {
  for (let dir = fromDir; dir.startsWith(kilnDir); dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === kilnDir) break;
  }
  return undefined;
}

async function listTree(root: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip(r)) continue;
      if (e.isDirectory()) await walk(r);
      else if (
        e.isFile() ||
        (e.isSymbolicLink() && statSync(join(root, r), { throwIfNoEntry: false })?.isFile())
      )
        out.push(r);
    }
  };
  await walk("");
  return out.sort();
}

function which(program: string): string | undefined {
  const path = process.env.PATH ?? "";
  for (const dir of [...path.split(delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    const p = join(dir, program);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** The shared libraries (and the dynamic loader) a program needs, as `ldd` resolves them. */
export async function sharedLibraries(program: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)("ldd", [program]));
  } catch (err) {
    // Static binaries make ldd exit 1 with "not a dynamic executable".
    const out = `${(err as { stdout?: string }).stdout ?? ""}${(err as { stderr?: string }).stderr ?? ""}`;
    if (/not a dynamic executable|statically linked/.test(out)) return [];
    throw new Error(`ldd ${program}: ${(err as Error).message}`);
  }
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    if (/=>\s*not found/.test(line))
      throw new Error(`${program} needs ${line.trim()}: the library is not installed`);
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

async function fileDigest(path: string): Promise<Buffer> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest();
}
