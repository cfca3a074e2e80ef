// PAX extended-header records ("LEN key=value\n"), kept as raw bytes: xattr values such as
// security.capability are binary and must survive a layer round trip unchanged.

/** Encodes records in the given order; LEN counts the whole record, its own digits included. */
export function encodePaxRecords(records: readonly (readonly [string, Buffer | string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from("\n")]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.from(String(len)), body);
  }
  return Buffer.concat(parts);
}

/** Decodes records; a later record for the same key wins, as in every reader of the format. */
export function decodePaxRecords(buf: Uint8Array): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const data = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number.parseInt(data.toString("latin1", pos, space), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length) {
      throw new Error(`malformed PAX header record at byte ${pos}`);
    }
    const record = data.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new Error(`malformed PAX header record at byte ${pos}: no "="`);
    out.set(record.toString("utf8", 0, eq), Buffer.from(record.subarray(eq + 1)));
    pos += len;
  }
  return out;
}
