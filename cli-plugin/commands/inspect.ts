// `kiln inspect [NAME] [--bootstrap]`: one builder in detail, node by node.
import type { Command } from "commander";
import { formatBytes } from "../progress/plain.js";
import { BuilderStore } from "../store/builder-store.js";
import { type NodeReport, reportNode } from "../store/node-report.js";
import { type Builder, loadBuilder, resolveBuilder } from "../store/resolve-builder.js";

export async function inspectBuilder(
  name: string | undefined,
  opts: { bootstrap: boolean; builderFlag?: string },
  env: NodeJS.ProcessEnv = process.env,
  log: (line: string) => void = () => {},
): Promise<string> {
  const store = BuilderStore.forEnv(env);
  const builder = name
    ? await loadBuilder(store, name, env)
    : await resolveBuilder({ builder: opts.builderFlag, env, store });
  if (opts.bootstrap) await Promise.all(builder.nodes.map((n) => n.driver.bootstrap(log)));
  const reports = await Promise.all(builder.nodes.map((n) => reportNode(n)));
  const lastActivity = builder.isDefault ? undefined : await store.lastActivity(builder.name);
  return formatInspect(builder, reports, lastActivity);
}

export function formatInspect(builder: Builder, reports: readonly NodeReport[], lastActivity?: Date): string {
  const out: string[] = [];
  const field = (k: string, v: string) => out.push(`${`${k}:`.padEnd(23)}${v}`);
  field("Name", builder.name);
  field("Driver", builder.driverName);
  if (lastActivity) field("Last Activity", lastActivity.toISOString());
  out.push("", "Nodes:");
  builder.nodes.forEach((n, i) => {
    const r = reports[i]!;
    if (i > 0) out.push("");
    field("Name", n.name);
    field("Endpoint", n.endpoint);
    if (n.stored?.driver) field("Driver", n.stored.driver);
    const opts = Object.entries(n.stored?.driverOpts ?? {});
    if (opts.length) field("Driver Options", opts.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" "));
    field("Status", r.status);
    if (r.error) field("Error", r.error);
    if (n.stored?.flags.length) field("Engine daemon flags", n.stored.flags.join(" "));
    if (r.version) field("Kiln version", r.version);
    if (r.platforms.length)
      field("Platforms", r.platforms.map((p) => (p.declared ? `${p.platform}*` : p.platform)).join(", "));
    (r.gcPolicy ?? []).forEach((rule, j) => {
      out.push(`GC Policy rule#${j}:`);
      const sub = (k: string, v: string) => out.push(`  ${`${k}:`.padEnd(15)}${v}`);
      sub("All", String(rule.all ?? false));
      if (rule.filters?.length) sub("Filters", rule.filters.join(","));
      if (rule.keepDurationMs) sub("Keep Duration", formatDuration(rule.keepDurationMs));
      if (rule.keepBytes) sub("Keep Bytes", formatBytes(rule.keepBytes));
    });
    const f = n.driver.features();
    field(
      "Features",
      Object.entries(f)
        .map(([k, v]) => `${k}=${v}`)
        .join(" "),
    );
    if (n.stored?.configFile !== undefined) {
      out.push("Engine config:");
      for (const line of n.stored.configFile.trimEnd().split("\n")) out.push(` ${line}`);
    }
  });
  return `${out.join("\n")}\n`;
}

/** Go's time.Duration spelling, as Buildx prints keep durations: `48h0m0s`. */
export function formatDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

export function registerInspectCommand(program: Command): void {
  program
    .command("inspect")
    .description("inspect the current builder instance, or the one named")
    .argument("[name]", "builder name")
    .option("--bootstrap", "ensure the builder has booted before inspecting", false)
    .action(async (name: string | undefined, o: { bootstrap: boolean }, cmd: Command) => {
      const text = await inspectBuilder(
        name,
        { bootstrap: o.bootstrap, builderFlag: cmd.optsWithGlobals().builder as string | undefined },
        process.env,
        (line) => process.stderr.write(`#1 ${line}\n`),
      );
      process.stdout.write(text);
    });
}
