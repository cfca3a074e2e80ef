// Buildx's comma-separated `key=value` flag values (`type=local,dest=out`), with CSV quoting.
import { UsageError } from "../errors.js";

/** Splits a CSV record as Go's encoding/csv does for one line: quotes protect commas. */
export function splitCsv(value: string): string[] {
  const fields: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted) {
      if (c === '"' && value[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur === "") quoted = true;
    else if (c === ",") {
      fields.push(cur);
      cur = "";
    } else cur += c;
  }
  if (quoted) throw new UsageError(`unterminated quote in ${JSON.stringify(value)}`);
  fields.push(cur);
  return fields;
}

/** `k=v,k2=v2` → record; a field without `=` is an error naming the flag. */
export function parseKeyValues(flag: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of splitCsv(value)) {
    if (field.trim() === "") continue;
    const eq = field.indexOf("=");
    if (eq <= 0)
      throw new UsageError(`invalid value ${JSON.stringify(field)} for ${flag}: expected key=value`);
    out[field.slice(0, eq).trim().toLowerCase()] = field.slice(eq + 1);
  }
  return out;
}
