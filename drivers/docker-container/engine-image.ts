// The docker-container driver's engine image, assembled from the Kiln installed on this machine
// when no `image=` option names another: a scratch image holding this host's `node` and `runc`
// (and the mount and decompression tools the engine calls) with the shared libraries `ldd` lists
// for them, the kilnd bundle with the packages it loads at run time, and `/usr/local/bin/kilnd`.
// It is tagged `kiln/engine:<hash of its inputs>`, so it is built once per Kiln (and host) and
// reused until either changes. The image can only run on daemons of this host's architecture.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { builtinModules } from "node:module";
import { delimiter, dirname, join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type Docker from "dockerode";
import * as tarStream from "tar-stream";

export const ENGINE_IMAGE_REPO = "kiln/engine";
/** Where the Kiln bundle lives in the image. */
const KILN_DIR = "/opt/kiln";
/** Bumped when the layout below changes, so old images are not reused. */
const LAYOUT_VERSION = "kiln-engine-image/1";
/** Host programs the engine runs besides runc; those not installed are left out. */
const ENGINE_TOOLS = ["mount", "umount", "gzip", "xz", "zstd"];
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

export interface EngineImagePlan {
  readonly tag: string;
  readonly files: readonly ImageFile[];
  readonly dockerfile: string;
}

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

  const dockerfile = [
    "FROM scratch",
    "COPY rootfs/ /",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    "VOLUME /var/lib/kiln",
    'ENTRYPOINT ["/usr/local/bin/kilnd"]',
    "",
  ].join("\n");
  const hash = createHash("sha256").update(LAYOUT_VERSION).update(dockerfile);
  for (const f of files) {
    hash.update(`\0${f.path}\0${f.mode}\0`);
    hash.update(typeof f.source === "string" ? await fileDigest(f.source) : f.source);
  }
  return { tag: `${ENGINE_IMAGE_REPO}:${hash.digest("hex").slice(0, 16)}`, files, dockerfile };
}

/** Builds the image on `docker` unless it is already there; returns its tag. */
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
  log(`building engine image ${plan.tag}`);
  const stream = await docker.buildImage(buildContext(plan) as unknown as NodeJS.ReadableStream, {
    t: plan.tag,
    rm: true,
    forcerm: true,
    labels: { "org.kiln.engine-image": "true" },
  });
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = output?.find((o) => o.error);
        if (err) reject(err);
        else if (failed)
          reject(new Error(`building ${plan.tag}: ${failed.errorDetail?.message ?? failed.error}`));
        else resolve();
      },
    );
  });
  return plan.tag;
}

/** The build context: the Dockerfile and rootfs/ with every file of the plan. */
export function buildContext(plan: EngineImagePlan): tarStream.Pack {
  const pack = tarStream.pack();
  const dirs = new Set<string>();
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
    await entry({ name: `rootfs${dir}/`, type: "directory", mode: dir === "/tmp" ? 0o1777 : 0o755 });
  };
  (async () => {
    await entry({ name: "Dockerfile", mode: 0o644 }, plan.dockerfile);
    for (const d of ["/tmp", "/run/kiln", "/var/lib/kiln", "/etc/kiln", "/root"]) await ensureDir(d);
    for (const f of plan.files) {
      await ensureDir(posix.dirname(f.path));
      if (Buffer.isBuffer(f.source)) {
        await entry({ name: `rootfs${f.path}`, mode: f.mode }, f.source);
        continue;
      }
      const size = (await stat(f.source)).size;
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry({ name: `rootfs${f.path}`, mode: f.mode, size, mtime: new Date(0) }, (err) =>
          err ? reject(err) : resolve(),
        );
        createReadStream(f.source as string)
          .on("error", reject)
          .pipe(sink);
      });
    }
    pack.finalize();
  })().catch((err: Error) => pack.destroy(err));
  return pack;
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
