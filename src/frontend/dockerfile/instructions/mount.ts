// `RUN --mount=…` specs (BuildKit's commands_runmount.go): a CSV list of `key=value` fields and
// bare options. BuildKit checks them twice: once when the instruction is parsed, without variable
// expansion (only the CSV syntax and a `from=` without variables), and once more when the RUN is
// converted, after expanding each value in the stage's scope. parseMount does either, by whether
// it is given an expander.
import { goToLower } from "../parser/case.js";
import { DockerfileError, suggestClosest } from "../parser/errors.js";
import type { MountSharing, MountSpec, MountType, RunInstruction, WordExpander } from "./types.js";

export const MOUNT_TYPES: readonly MountType[] = ["bind", "cache", "tmpfs", "secret", "ssh"];
export const MOUNT_SHARING_MODES: readonly MountSharing[] = ["shared", "private", "locked"];
const MOUNT_KEYS = [
  "type",
  "from",
  "source",
  "target",
  "readonly",
  "id",
  "sharing",
  "required",
  "size",
  "mode",
  "uid",
  "gid",
  "src",
  "dst",
  "destination",
  "ro",
  "rw",
  "readwrite",
  "env",
];

function fail(message: string, suggestion?: string): never {
  throw new DockerfileError({ message, suggestion });
}

function withSuggestion(message: string, value: string, options: readonly string[]): never {
  const m = suggestClosest(value, options, true);
  fail(message, m ? `did you mean ${m}?` : `one of: ${options.join(", ")}`);
}

function byteLen(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** One CSV record, as tonistiigi/go-csvvalue parses it (encoding/csv rules, no lazy quotes). */
export function csvFields(input: string): string[] {
  let line = input;
  if (line.endsWith("\n")) line = line.slice(0, line.endsWith("\r\n") ? -2 : -1);
  if (line.length === 0) throw new Error("EOF");
  const dst: string[] = [];
  let pos = 0; // byte offset, for error columns
  const parseErr = (p: number, what: string): never => {
    throw new Error(`parse error on line 1, column ${p + 1}: ${what}`);
  };
  for (;;) {
    if (line.length === 0 || line[0] !== '"') {
      const i = line.indexOf(",");
      const field = i >= 0 ? line.slice(0, i) : line;
      const j = field.indexOf('"');
      if (j >= 0) parseErr(pos + byteLen(field.slice(0, j)), 'bare " in non-quoted-field');
      dst.push(field);
      if (i >= 0) {
        pos += byteLen(line.slice(0, i)) + 1;
        line = line.slice(i + 1);
        continue;
      }
      return dst;
    }
    // quoted field
    line = line.slice(1);
    pos += 1;
    let halfOpen = false;
    for (;;) {
      const i = line.indexOf('"');
      if (i < 0) parseErr(pos, 'extraneous or missing " in quoted-field');
      if (!halfOpen) dst.push(line.slice(0, i));
      else dst[dst.length - 1] += line.slice(0, i);
      halfOpen = false;
      pos += byteLen(line.slice(0, i)) + 1;
      line = line.slice(i + 1);
      if (line[0] === '"') {
        dst[dst.length - 1] += '"';
        line = line.slice(1);
        pos += 1;
        halfOpen = true;
      } else if (line[0] === ",") {
        line = line.slice(1);
        pos += 1;
        break; // next field
      } else if (line.length === 0) {
        return dst;
      } else {
        parseErr(pos - 1, 'extraneous or missing " in quoted-field');
      }
    }
  }
}

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  switch (s) {
    case "1":
    case "t":
    case "T":
    case "TRUE":
    case "true":
    case "True":
      return true;
    case "0":
    case "f":
    case "F":
    case "FALSE":
    case "false":
    case "False":
      return false;
  }
  return undefined;
}

/** Go's strconv.ParseUint(s, base, 32) for base 8 or 10; undefined when invalid or out of range. */
function parseUint32(s: string, base: 8 | 10): number | undefined {
  if (!(base === 8 ? /^[0-7]+$/ : /^[0-9]+$/).test(s)) return undefined;
  const n = Number.parseInt(s, base);
  return n <= 0xffffffff ? n : undefined;
}

const goFloatRe = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** go-units RAMInBytes: `64m`, `1g`, `512kb`, `1.5GiB`, `100` (bytes); binary multiples. */
export function ramInBytes(size: string): number | undefined {
  let sep = -1;
  for (let i = size.length - 1; i >= 0; i--) {
    if ("01234567890. ".includes(size[i]!)) {
      sep = i;
      break;
    }
  }
  if (sep === -1) return undefined;
  let num: string;
  let sfx: string;
  if (size[sep] !== " ") {
    num = size.slice(0, sep + 1);
    sfx = size.slice(sep + 1);
  } else {
    num = size.slice(0, sep);
    sfx = size.slice(sep + 1);
  }
  // (`num` ends in a digit, dot or space, so Go's inf/nan spellings cannot occur.)
  if (!goFloatRe.test(num)) return undefined;
  let n = Number(num);
  if (!Number.isFinite(n) || n < 0) return undefined;
  if (sfx.length === 0) return Math.trunc(n);
  if (sfx.length > 3) return undefined;
  sfx = sfx.toLowerCase();
  if (sfx[0] === "b") return sfx.length > 1 ? undefined : Math.trunc(n);
  const mul: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  const m = mul[sfx[0]!];
  if (m === undefined) return undefined;
  n *= m;
  if (sfx.length === 2 && sfx[1] !== "b") return undefined;
  if (sfx.length === 3 && sfx.slice(1) !== "ib") return undefined;
  return Math.trunc(n);
}

type MutableMount = { -readonly [K in keyof MountSpec]: MountSpec[K] };

/**
 * Parses one `--mount` value. Without `expand`, only what BuildKit checks at parse time is
 * checked (CSV syntax; `from=` holding no variable) and the result is the default bind mount;
 * with `expand`, each value is expanded and the spec fully validated. Throws DockerfileError.
 */
export function parseMount(spec: string, expand?: WordExpander): MountSpec {
  let fields: string[];
  try {
    fields = csvFields(spec);
  } catch (e) {
    fail(`failed to parse csv mounts: ${(e as Error).message}`);
  }
  const m: MutableMount = {
    type: "bind",
    from: "",
    source: "",
    target: "",
    readOnly: false,
    sizeLimit: 0,
    id: "",
    sharing: "",
    required: false,
    env: undefined,
    mode: undefined,
    uid: undefined,
    gid: undefined,
  };
  let roAuto = true;

  for (const field of fields) {
    const eq = field.indexOf("=");
    const key = goToLower(eq < 0 ? field : field.slice(0, eq));
    let value = eq < 0 ? "" : field.slice(eq + 1);
    if (eq < 0) {
      if (!expand) continue; // evaluated later
      switch (key) {
        case "readonly":
        case "ro":
          m.readOnly = true;
          roAuto = false;
          continue;
        case "readwrite":
        case "rw":
          m.readOnly = false;
          roAuto = false;
          continue;
        case "required":
          if (m.type === "secret" || m.type === "ssh") {
            m.required = true;
            continue;
          }
          fail(`unexpected key '${key}' for mount type '${m.type}'`);
          break;
        default:
          fail(`invalid field '${field}' must be a key=value pair`);
      }
    }

    if (expand) {
      value = expand(value);
    } else if (key === "from") {
      const idx = value.indexOf("$");
      if (idx !== -1 && idx !== value.length - 1) {
        fail(`'${key}' doesn't support variable expansion, define alias stage instead`);
      }
    } else {
      continue; // evaluated later
    }

    switch (key) {
      case "type": {
        const v = goToLower(value);
        if (!(MOUNT_TYPES as readonly string[]).includes(v)) {
          withSuggestion(`unsupported mount type "${value}"`, value, MOUNT_TYPES);
        }
        m.type = v as MountType;
        break;
      }
      case "from":
        m.from = value;
        break;
      case "source":
      case "src":
        m.source = value;
        break;
      case "target":
      case "dst":
      case "destination":
        m.target = value;
        break;
      case "readonly":
      case "ro": {
        const b = parseGoBool(value);
        if (b === undefined) fail(`invalid value for ${key}: ${value}`);
        m.readOnly = b;
        roAuto = false;
        break;
      }
      case "readwrite":
      case "rw": {
        const b = parseGoBool(value);
        if (b === undefined) fail(`invalid value for ${key}: ${value}`);
        m.readOnly = !b;
        roAuto = false;
        break;
      }
      case "required": {
        if (m.type !== "secret" && m.type !== "ssh")
          fail(`unexpected key '${key}' for mount type '${m.type}'`);
        const b = parseGoBool(value);
        if (b === undefined) fail(`invalid value for ${key}: ${value}`);
        m.required = b;
        break;
      }
      case "size": {
        if (m.type !== "tmpfs") fail(`unexpected key '${key}' for mount type '${m.type}'`);
        const n = ramInBytes(value);
        if (n === undefined) fail(`invalid value for ${key}: ${value}`);
        m.sizeLimit = n;
        break;
      }
      case "id":
        m.id = value;
        break;
      case "sharing": {
        const v = goToLower(value);
        if (!(MOUNT_SHARING_MODES as readonly string[]).includes(v)) {
          withSuggestion(`unsupported sharing value "${value}"`, value, MOUNT_SHARING_MODES);
        }
        m.sharing = v as MountSharing;
        break;
      }
      case "mode": {
        const n = parseUint32(value, 8);
        if (n === undefined) fail(`invalid value ${value} for mode`);
        m.mode = n;
        break;
      }
      case "uid": {
        const n = parseUint32(value, 10);
        if (n === undefined) fail(`invalid value ${value} for uid`);
        m.uid = n;
        break;
      }
      case "gid": {
        const n = parseUint32(value, 10);
        if (n === undefined) fail(`invalid value ${value} for gid`);
        m.gid = n;
        break;
      }
      case "env":
        m.env = value;
        break;
      default:
        withSuggestion(`unexpected key '${key}' in '${field}'`, key, MOUNT_KEYS);
    }
  }

  const fileInfoAllowed = m.type === "secret" || m.type === "ssh" || m.type === "cache";
  if (!fileInfoAllowed) {
    if (m.mode !== undefined) fail(`mode not allowed for "${m.type}" type mounts`);
    if (m.uid !== undefined) fail(`uid not allowed for "${m.type}" type mounts`);
    if (m.gid !== undefined) fail(`gid not allowed for "${m.type}" type mounts`);
  }
  if (roAuto) m.readOnly = !(m.type === "cache" || m.type === "tmpfs");
  if (m.type === "secret") {
    if (m.from !== "") fail("secret mount should not have a from");
    if (m.sharing !== "") fail("secret mount should not define sharing");
    if (m.source === "" && m.target === "" && m.id === "")
      fail("invalid secret mount. one of source, target required");
    if (m.source !== "" && m.id !== "") fail("both source and id can't be set");
  }
  if (m.sharing !== "" && m.type !== "cache") fail(`invalid cache sharing set for ${m.type} mount`);
  return m;
}

/** The RUN's mounts after expansion with the stage's expander. Throws DockerfileError. */
export function expandRunMounts(run: RunInstruction, expand: WordExpander): MountSpec[] {
  return run.mountSpecs.map((s) => {
    try {
      return parseMount(s, expand);
    } catch (e) {
      if (e instanceof DockerfileError) {
        throw e.withContext({ line: run.location.startLine, endLine: run.location.endLine });
      }
      throw e;
    }
  });
}
