// Parsing of `WWW-Authenticate` challenges (RFC 7235), as registries send them on 401 responses:
// `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"`.

export interface AuthChallenge {
  /** Lower-cased scheme: `basic`, `bearer`, … */
  readonly scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN_CHARS = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses one header value, which may hold several challenges separated by commas
 * (`Basic realm="x", Bearer realm="y"`). Malformed tails are dropped rather than thrown on: a
 * registry's odd header should not stop a request that may well work with the part we understood.
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseWwwAuthenticate(h));
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TOKEN_CHARS.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  // Unquoted values should be tokens, but registries send bare URLs too: read to the next comma.
  const readBare = (): string => {
    const start = i;
    while (i < n && header[i] !== "," && header[i] !== " " && header[i] !== "\t") i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    // At the opening quote.
    i++;
    let v = "";
    while (i < n && header[i] !== '"') {
      if (header[i] === "\\" && i + 1 < n) i++;
      v += header[i];
      i++;
    }
    i++; // closing quote
    return v;
  };
  while (i < n) {
    skipSpace();
    while (i < n && header[i] === ",") {
      i++;
      skipSpace();
    }
    if (i >= n) break;
    const word = readToken();
    if (word === "") break;
    skipSpace();
    // A new challenge starts with a scheme followed by a space (or end), not by `=`.
    if (header[i] === "=" && out.length > 0) {
      // A parameter of the current challenge.
      i++;
      skipSpace();
      const value = header[i] === '"' ? readQuoted() : readBare();
      out[out.length - 1]!.params[word.toLowerCase()] = value;
      continue;
    }
    if (header[i] === "=") break; // a parameter before any scheme: malformed
    out.push({ scheme: word.toLowerCase(), params: {} });
    // token68 form (`Basic dXNlcjpw==`) carries no parameters we use; skip it.
    const save = i;
    const t = readToken();
    skipSpace();
    if (t !== "" && header[i] === "=") {
      i = save; // it was the first auth-param, not a token68
    } else if (t !== "") {
      while (i < n && header[i] === "=") i++;
    } else {
      i = save;
    }
  }
  return out;
}
