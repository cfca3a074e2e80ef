// The copy action (COPY/ADD): sources resolved in the source root (wildcards, --parents pivots),
// destination paths resolved in the destination root, then tree copies or archive extraction,
// following BuildKit's FileOp backend and fsutil's Copy.
import { lstat, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { cleanPath, splitDirBase } from "../../fs/clean-path.js";
import { cleanRelativePath, PatternMatcher } from "../../fs/patterns.js";
import { isAbsentError, pathInRoot, resolveInRoot } from "../../fs/scoped-path.js";
import { walkTree } from "../../fs/tree-walk.js";
import { resolveFinal, resolveWildcards } from "../../fs/wildcards.js";
import type { CopyAction } from "../../llb/ops.js";
import type { DeferredLinks } from "./deferred-links.js";
import { FileOpError } from "./errors.js";
import { fixedMode, type ModeChange, parseMode } from "./file-mode.js";
import { mkdirAll, setTimes } from "./metadata.js";
import type { FileOwner } from "./owner.js";
import { copyTree } from "./tree-copy.js";
import { extractTarArchive, isTarArchive } from "./unpack.js";

export interface CopyContext {
  readonly srcRoot: string;
  readonly destRoot: string;
  /** Resolved ChownOpt; undefined keeps the sources' owners. */
  readonly owner?: FileOwner;
  readonly concurrency?: number;
  readonly deferredLinks?: DeferredLinks;
}

/** What a copy action selects, once --parents is turned into a pivot and include pattern. */
export interface CopySelection {
  readonly src: string;
  readonly dirCopyContents: boolean;
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
}

/**
 * --parents keeps each source's path below a pivot: "a/./b/*.txt" copies the contents of "a"
 * filtered by "b/*.txt"; without "/./" the pivot is the root. This is how BuildKit's Dockerfile
 * frontend lowers --parents.
 */
export function copySelection(action: CopyAction): CopySelection {
  if (!action.parents)
    return {
      src: action.src,
      dirCopyContents: action.dirCopyContents,
      includePatterns: action.includePatterns,
      excludePatterns: action.excludePatterns,
    };
  const pivot = action.src.indexOf("/./");
  const [src, pattern] =
    pivot >= 0 ? [action.src.slice(0, pivot) || "/", action.src.slice(pivot + 3)] : ["/", action.src];
  return {
    src,
    dirCopyContents: true,
    includePatterns: [cleanRelativePath(pattern)],
    excludePatterns: action.excludePatterns,
  };
}

export async function executeCopy(action: CopyAction, ctx: CopyContext): Promise<void> {
  const selection = copySelection(action);
  const mode: ModeChange | undefined = action.modeSymbolic
    ? parseMode(action.modeSymbolic)
    : action.mode !== undefined
      ? fixedMode(action.mode)
      : undefined;
  const include = new PatternMatcher(selection.includePatterns ?? []);
  const exclude = new PatternMatcher(selection.excludePatterns ?? []);
  const dest = action.dest;
  const shownSrc = cleanPath(`/${selection.src}`);

  if (!action.createDestPath) {
    const p = await resolveInRoot(ctx.destRoot, dest);
    try {
      await lstat(dirname(p));
    } catch (err) {
      if (!isAbsentError(err)) throw err;
      const parent = pathInRoot(ctx.destRoot, dirname(p));
      throw new FileOpError(
        `failed to stat ${dest}: directory ${parent} does not exist`,
        "not-found",
        parent,
      );
    }
  }

  await checkRequiredPaths(ctx.srcRoot, action.requiredPaths);

  let sources: string[];
  if (action.allowWildcard && !action.parents) {
    sources = await resolveWildcards(ctx.srcRoot, selection.src, action.followSymlink);
    if (sources.length === 0) {
      if (action.allowEmptyWildcard) return;
      throw new FileOpError(`${JSON.stringify(shownSrc)}: not found`, "not-found", shownSrc);
    }
  } else sources = [selection.src];

  if (sources.length > 1 && !dest.endsWith("/")) {
    const existing = await stat(await resolveInRoot(ctx.destRoot, dest)).catch(() => undefined);
    if (!existing?.isDirectory())
      throw new FileOpError(
        `When using COPY with more than one source file, the destination must be a directory and end with a / (${JSON.stringify(shownSrc)} matches ${sources.length} files)`,
        "invalid",
      );
  }

  for (const source of sources) {
    if (action.attemptUnpackDockerCompatibility) {
      const archive = await resolveInRoot(ctx.srcRoot, source);
      if (await isTarArchive(archive, cleanPath(`/${source}`))) {
        const destHost = await resolveInRoot(ctx.destRoot, dest);
        const created = await mkdirAll(destHost, 0o755, ctx.owner, action.timestamp);
        await extractTarArchive(archive, destHost, cleanPath(`/${source}`));
        await restoreTimes(created, action.timestamp);
        continue;
      }
    }
    await copyOne(source, dest, {
      ctx,
      action,
      dirCopyContents: selection.dirCopyContents,
      include,
      exclude,
      mode,
    });
  }
}

interface CopyOneOptions {
  readonly ctx: CopyContext;
  readonly action: CopyAction;
  readonly dirCopyContents: boolean;
  readonly include: PatternMatcher;
  readonly exclude: PatternMatcher;
  readonly mode?: ModeChange;
}

async function copyOne(source: string, dest: string, o: CopyOneOptions): Promise<void> {
  const { ctx, action } = o;
  const utime = action.timestamp;
  // Directories fsutil creates on the way get the numeric --chmod mode if there is one.
  const dirMode = action.mode !== undefined && !action.modeSymbolic ? action.mode & 0o7777 : 0o755;
  const created: string[] = [];

  const [dir, file] = splitDirBase(dest);
  const ensure = file !== "" && file !== "." ? dir : dest;
  if (ensure !== "")
    created.push(...(await mkdirAll(await resolveInRoot(ctx.destRoot, ensure), dirMode, ctx.owner, utime)));

  let target = await resolveInRoot(ctx.destRoot, cleanPath(dest));
  const srcHost = await resolveFinal(ctx.srcRoot, source, action.followSymlink);
  const shownSource = cleanPath(`/${source}`);
  const srcStat = await lstat(srcHost).catch((err) => {
    if (isAbsentError(err))
      throw new FileOpError(`${JSON.stringify(shownSource)}: not found`, "not-found", shownSource);
    throw err;
  });
  const destStat = await stat(target).catch((err) => {
    if (isAbsentError(err)) return undefined;
    throw err;
  });
  const srcIsDir = srcStat.isDirectory();
  // Into an existing directory, under the source's own name; a directory's contents merge.
  if ((!o.dirCopyContents && srcIsDir && destStat) || (!srcIsDir && destStat?.isDirectory()))
    target = join(target, basename(shownSource));
  const parent = o.dirCopyContents && srcIsDir && !destStat ? target : dirname(target);
  created.push(...(await mkdirAll(parent, dirMode, ctx.owner, utime)));

  const entries = await walkTree(srcHost, { include: o.include, exclude: o.exclude });
  await copyTree(entries, target, {
    owner: ctx.owner,
    mode: o.mode,
    utime,
    alwaysReplaceExistingDestPaths: action.alwaysReplaceExistingDestPaths,
    destRoot: ctx.destRoot,
    concurrency: ctx.concurrency,
    deferredLinks: ctx.deferredLinks,
  });
  await restoreTimes(created, utime);
}

/**
 * Paths that must exist in the source although the copy selects by include patterns (which would
 * silently match nothing): COPY --parents of a plain path lowers to a pattern plus one of these.
 */
export async function checkRequiredPaths(
  srcRoot: string,
  required: readonly string[] | undefined,
): Promise<void> {
  for (const p of required ?? []) {
    const shown = cleanPath(`/${p}`);
    try {
      await lstat(await resolveInRoot(srcRoot, p));
    } catch (err) {
      if (isAbsentError(err))
        throw new FileOpError(`${JSON.stringify(shown)}: not found`, "not-found", shown);
      throw err;
    }
  }
}

/** Creating entries inside new parent directories moved their mtimes; put the timestamp back. */
async function restoreTimes(created: readonly string[], utime: number | undefined): Promise<void> {
  if (utime === undefined) return;
  for (const dir of [...created].reverse()) await setTimes(dir, utime, false);
}
