// `kiln ls [--format table|json]`: the builders and their nodes, statuses, versions and platforms.
import type { Command } from "commander";
import { UsageError } from "../errors.js";
import { BuilderStore } from "../store/builder-store.js";
import { type NodeReport, reportNode } from "../store/node-report.js";
import {
  type Builder,
  builderFromGroup,
  defaultBuilder,
  selectedBuilderName,
} from "../store/resolve-builder.js";

export interface BuilderListing {
  readonly builder: Builder;
  readonly current: boolean;
  readonly lastActivity?: Date;
  readonly nodes: readonly NodeReport[];
  /** Why the builder could not be loaded (an invalid stored file, an unknown driver). */
  readonly error?: string;
}

export async function listBuilders(
  env: NodeJS.ProcessEnv = process.env,
  builderFlag?: string,
): Promise<BuilderListing[]> {
  const store = BuilderStore.forEnv(env);
  const current = (await selectedBuilderName({ builder: builderFlag, env, store })) ?? "default";
  const builders: Builder[] = [];
  const broken: BuilderListing[] = [];
  for (const ng of await store.list()) {
    try {
      builders.push(builderFromGroup(ng, env));
    } catch (err) {
      const builder: Builder = {
        name: ng.name,
        driverName: ng.driver,
        nodes: [],
        isDefault: false,
        group: ng,
      };
      broken.push({ builder, current: ng.name === current, nodes: [], error: (err as Error).message });
    }
  }
  builders.push(defaultBuilder(env));
  const listed = await Promise.all(
    builders.map(async (b): Promise<BuilderListing> => {
      const [nodes, lastActivity] = await Promise.all([
        Promise.all(b.nodes.map((n) => reportNode(n))),
        b.isDefault ? undefined : store.lastActivity(b.name),
      ]);
      return { builder: b, current: b.name === current, lastActivity, nodes };
    }),
  );
  return [...listed, ...broken].sort((a, b) =>
    a.builder.isDefault !== b.builder.isDefault
      ? a.builder.isDefault
        ? 1
        : -1
      : a.builder.name.localeCompare(b.builder.name),
  );
}

function platformsColumn(r: NodeReport): string {
  return r.platforms.map((p) => (p.declared ? `${p.platform}*` : p.platform)).join(", ");
}

/** The table Buildx prints: builder rows, then ` \_ ` node rows. */
export function formatTable(listings: readonly BuilderListing[]): string {
  const rows: string[][] = [["NAME/NODE", "DRIVER/ENDPOINT", "STATUS", "KILN", "PLATFORMS"]];
  for (const l of listings) {
    rows.push([
      `${l.builder.name}${l.current ? "*" : ""}`,
      l.builder.driverName,
      l.error ? "error" : "",
      "",
      "",
    ]);
    l.builder.nodes.forEach((n, i) => {
      const r = l.nodes[i]!;
      rows.push([` \\_ ${n.name}`, ` \\_ ${n.endpoint}`, r.status, r.version ?? "", platformsColumn(r)]);
    });
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) =>
    r
      .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 3)))
      .join("")
      .trimEnd(),
  );
  const errors = listings.flatMap((l) => [
    ...(l.error ? [`Cannot load builder ${l.builder.name}: ${l.error}`] : []),
    ...l.builder.nodes.flatMap((n, i) =>
      l.nodes[i]?.error ? [`Cannot load node ${n.name} of ${l.builder.name}: ${l.nodes[i]!.error}`] : [],
    ),
  ]);
  return `${lines.join("\n")}\n${errors.length ? `\n${errors.join("\n")}\n` : ""}`;
}

/** One JSON object per builder per line, with Buildx's field names. */
export function formatJson(listings: readonly BuilderListing[]): string {
  return listings
    .map((l) =>
      JSON.stringify({
        Name: l.builder.name,
        Driver: l.builder.driverName,
        Current: l.current,
        ...(l.lastActivity ? { LastActivity: l.lastActivity.toISOString() } : {}),
        Dynamic: l.builder.group?.dynamic ?? false,
        ...(l.error ? { Err: l.error } : {}),
        Nodes: l.builder.nodes.map((n, i) => {
          const r = l.nodes[i]!;
          return {
            Name: n.name,
            Endpoint: n.endpoint,
            ...(n.stored && Object.keys(n.stored.driverOpts).length
              ? { DriverOpts: n.stored.driverOpts }
              : {}),
            ...(n.stored?.flags.length ? { Flags: n.stored.flags } : {}),
            Status: r.status,
            ...(r.version ? { Version: r.version } : {}),
            Platforms: r.platforms.map((p) => p.platform),
            ...(r.error ? { Err: r.error } : {}),
          };
        }),
      }),
    )
    .map((line) => `${line}\n`)
    .join("");
}

export function registerLsCommand(program: Command): void {
  program
    .command("ls")
    .description("list builder instances")
    .option("--format <format>", "table or json", "table")
    .action(async (o: { format: string }, cmd: Command) => {
      if (o.format !== "table" && o.format !== "json") {
        throw new UsageError(`unknown format ${JSON.stringify(o.format)}: use table or json`);
      }
      const listings = await listBuilders(process.env, cmd.optsWithGlobals().builder as string | undefined);
      process.stdout.write(o.format === "json" ? formatJson(listings) : formatTable(listings));
    });
}
