// Disk-usage records (what `kiln du` lists and `kiln prune` removes) and the filters that select
// them: `key==value`, `key=value`, `key!=value`, `key~=regexp`, or a bare boolean key.
import type { SnapshotId } from "../snapshot/types.js";
import { parseDurationMs } from "./gc-policy.js";
import type { RecordType } from "./metadata-snapshots.js";

export interface UsageRecord {
  readonly id: SnapshotId;
  readonly parents: readonly SnapshotId[];
  readonly recordType: RecordType;
  readonly description: string;
  /** Bytes of the snapshot plus the layer blobs made from it. */
  readonly size: number;
  readonly createdAt: number;
  readonly lastUsedAt?: number;
  readonly usageCount: number;
  /** A writable (active) snapshot, e.g. a cache mount. */
  readonly mutable: boolean;
  /** Held by a live lease: a build is using it. */
  readonly inUse: boolean;
  /** Referenced by more than one cache record, or the parent of another snapshot. */
  readonly shared: boolean;
  /** The cache keys whose results include this snapshot. */
  readonly cacheKeys: readonly string[];
}

export interface UsageFilter {
  matches(record: UsageRecord): boolean;
  /** From an `until=<duration>` filter: records used more recently than this are kept. */
  readonly keepDurationMs?: number;
}

const BOOLEAN_KEYS = ["shared", "private", "inuse", "mutable", "immutable"] as const;
const VALUE_KEYS = ["id", "type", "description", "parents", "parent"] as const;
type Key = (typeof BOOLEAN_KEYS)[number] | (typeof VALUE_KEYS)[number];

interface Condition {
  readonly key: Key;
  readonly op: "==" | "!=" | "~=";
  readonly value: string;
}

/**
 * Parses prune/du filters. Each string may hold comma-separated conditions. Conditions on the same
 * key with `==` or `~=` are alternatives (`type==a`, `type==b` selects either); all other
 * conditions must hold together.
 */
export function parseUsageFilters(filters: readonly string[] = []): UsageFilter {
  const conditions: Condition[] = [];
  let keepDurationMs: number | undefined;
  for (const filter of filters) {
    for (const part of filter.split(",")) {
      const text = part.trim();
      if (text === "") continue;
      const m = /^([A-Za-z.]+)\s*(==|!=|~=|=)?\s*(.*)$/.exec(text);
      const key = m?.[1]?.toLowerCase();
      const op = m?.[2] === "=" ? "==" : (m?.[2] as Condition["op"] | undefined);
      const value = unquote(m?.[3] ?? "");
      if (key === "until") {
        if (op !== "==" || value === "")
          throw new Error(`invalid filter ${JSON.stringify(text)}: expected until=<duration>`);
        keepDurationMs = parseDurationMs(value);
        continue;
      }
      if (!key || !isKey(key)) {
        throw new Error(
          `unknown filter ${JSON.stringify(text)}: filter on ${[...VALUE_KEYS, ...BOOLEAN_KEYS, "until"].join(", ")}`,
        );
      }
      if (op === undefined) {
        if (!(BOOLEAN_KEYS as readonly string[]).includes(key)) {
          throw new Error(`invalid filter ${JSON.stringify(text)}: expected ${key}=<value>`);
        }
        conditions.push({ key, op: "==", value: "true" });
        continue;
      }
      if (op === "~=") {
        try {
          new RegExp(value);
        } catch {
          throw new Error(
            `invalid filter ${JSON.stringify(text)}: ${JSON.stringify(value)} is not a regular expression`,
          );
        }
      }
      const isBoolean = (BOOLEAN_KEYS as readonly string[]).includes(key);
      conditions.push({ key, op, value: isBoolean && op !== "~=" ? normalizeBoolean(value) : value });
    }
  }

  const alternatives = new Map<Key, Condition[]>();
  const required: Condition[] = [];
  for (const c of conditions) {
    if (c.op === "!=") required.push(c);
    else alternatives.set(c.key, [...(alternatives.get(c.key) ?? []), c]);
  }
  return {
    matches: (r) =>
      required.every((c) => holds(c, r)) &&
      [...alternatives.values()].every((cs) => cs.some((c) => holds(c, r))),
    ...(keepDurationMs !== undefined ? { keepDurationMs } : {}),
  };
}

function holds(c: Condition, r: UsageRecord): boolean {
  const values = fieldValues(c.key, r);
  if (c.op === "~=") {
    const re = new RegExp(c.value);
    return values.some((v) => re.test(v));
  }
  const equal = values.includes(c.value);
  return c.op === "==" ? equal : !equal;
}

function fieldValues(key: Key, r: UsageRecord): string[] {
  switch (key) {
    case "id":
      return [r.id];
    case "type":
      return [r.recordType];
    case "description":
      return [r.description];
    case "parents":
    case "parent":
      return [...r.parents];
    case "shared":
      return [String(r.shared)];
    case "private":
      return [String(!r.shared)];
    case "inuse":
      return [String(r.inUse)];
    case "mutable":
      return [String(r.mutable)];
    case "immutable":
      return [String(!r.mutable)];
  }
}

function normalizeBoolean(v: string): string {
  const s = v.toLowerCase();
  if (s === "" || s === "1" || s === "true") return "true";
  if (s === "0" || s === "false") return "false";
  throw new Error(`invalid boolean filter value ${JSON.stringify(v)}: expected true or false`);
}

function isKey(k: string): k is Key {
  return (BOOLEAN_KEYS as readonly string[]).includes(k) || (VALUE_KEYS as readonly string[]).includes(k);
}

function unquote(s: string): string {
  const t = s.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}
