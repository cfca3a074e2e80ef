// `kiln du` and `kiln prune`: the build cache of the selected builder, as Buildx shows and prunes it.
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { parseBytes } from "../../src/cache/gc-policy.js";
import type { UsageRecord } from "../../src/cache/usage-filter.js";
import { builderFlag, withBuilderEngine } from "../builder-engine.js";
import { formatBytes } from "../progress/plain.js";

const collect = (value: string, previous: string[]) => [...previous, value];

function ago(ms: number | undefined): string {
  if (ms === undefined) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function formatUsage(records: readonly UsageRecord[], verbose: boolean): string {
  let out = "";
  if (verbose) {
    for (const r of records) {
      out += `ID:\t\t${r.id}\n`;
      if (r.parents.length) out += `Parents:\t${r.parents.join(", ")}\n`;
      out += `Created at:\t${new Date(r.createdAt).toISOString()}\nMutable:\t${r.mutable}\nReclaimable:\t${!r.inUse}\nShared:\t\t${r.shared}\nSize:\t\t${formatBytes(r.size)}\n`;
      if (r.description) out += `Description:\t${r.description}\n`;
      out += `Usage count:\t${r.usageCount}\nLast used:\t${ago(r.lastUsedAt)}\nType:\t\t${r.recordType}\n\n`;
    }
  } else if (records.length) {
    out += `${"ID".padEnd(28)}${"RECLAIMABLE".padEnd(16)}${"SIZE".padEnd(16)}LAST ACCESSED\n`;
    for (const r of records) {
      out += `${(r.id + (r.mutable ? "*" : "")).padEnd(28)}${String(!r.inUse).padEnd(16)}${formatBytes(r.size).padEnd(16)}${ago(r.lastUsedAt)}\n`;
    }
  }
  const sum = (f: (r: UsageRecord) => boolean) =>
    formatBytes(records.filter(f).reduce((a, r) => a + r.size, 0));
  out += `Shared:\t\t${sum((r) => r.shared)}\nPrivate:\t${sum((r) => !r.shared)}\nReclaimable:\t${sum((r) => !r.inUse)}\nTotal:\t\t${sum(() => true)}\n`;
  return out;
}

export function registerDiskUsageCommands(program: Command): void {
  program
    .command("du")
    .description("Disk usage of the builder's build cache")
    .option("--filter <filter>", "provide filter values (e.g., until=24h, type=regular)", collect, [])
    .option("--verbose", "provide a more verbose output")
    .option("--format <format>", "output format: table or json", "table")
    .action(async (opts: { filter: string[]; verbose?: boolean; format: string }, cmd: Command) => {
      const records = await withBuilderEngine(builderFlag(cmd), process.env, [], (e) =>
        e.diskUsage(opts.filter),
      );
      process.stdout.write(
        opts.format === "json"
          ? `${JSON.stringify(records, null, 2)}\n`
          : formatUsage(records, !!opts.verbose),
      );
    });
  program
    .command("prune")
    .description("Remove build cache")
    .option("-a, --all", "include internal/frontend images")
    .option("--filter <filter>", "provide filter values (e.g., until=24h)", collect, [])
    .option("-f, --force", "do not prompt for confirmation")
    .option("--keep-storage <bytes>", "amount of disk space to keep for cache")
    .action(
      async (
        opts: { all?: boolean; filter: string[]; force?: boolean; keepStorage?: string },
        cmd: Command,
      ) => {
        if (!opts.force) {
          if (!process.stdin.isTTY)
            throw new Error("prune needs confirmation: pass -f/--force to run without a terminal");
          const rl = createInterface({ input: process.stdin, output: process.stderr });
          const answer = await rl.question(
            `WARNING! This will remove all ${opts.all ? "" : "dangling "}build cache. Are you sure you want to continue? [y/N] `,
          );
          rl.close();
          if (!/^y(es)?$/i.test(answer.trim())) return;
        }
        const keepStorage = opts.keepStorage ? parseBytes(opts.keepStorage) : undefined;
        const r = await withBuilderEngine(builderFlag(cmd), process.env, [], (e) =>
          e.prune({ all: opts.all, filters: opts.filter, keepStorage }),
        );
        process.stdout.write(`Total:\t${formatBytes(r.reclaimedBytes)}\n`);
      },
    );
}
