// Go's strconv.Quote (`%q`), which BuildKit's AST dump and error messages use: double quotes,
// backslash escapes, non-printable runes as \x, \u or \U escapes.

const printable = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u;

/** True for the runes Go's unicode.IsPrint accepts: letters, marks, numbers, punctuation, symbols, ASCII space. */
export function isGoPrint(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7f;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return printable.test(String.fromCodePoint(cp));
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}

/** Go's strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    i += cp > 0xffff ? 2 : 1;
    switch (cp) {
      case 0x22:
        out += '\\"';
        continue;
      case 0x5c:
        out += "\\\\";
        continue;
      case 0x07:
        out += "\\a";
        continue;
      case 0x08:
        out += "\\b";
        continue;
      case 0x0c:
        out += "\\f";
        continue;
      case 0x0a:
        out += "\\n";
        continue;
      case 0x0d:
        out += "\\r";
        continue;
      case 0x09:
        out += "\\t";
        continue;
      case 0x0b:
        out += "\\v";
        continue;
    }
    if (isGoPrint(cp)) {
      out += String.fromCodePoint(cp);
    } else if (cp < 0x20 || cp === 0x7f) {
      out += "\\x" + hex(cp, 2);
    } else if (cp >= 0xd800 && cp <= 0xdfff) {
      // A lone surrogate cannot come from UTF-8 input; decoding would have given U+FFFD.
      out += "\ufffd";
    } else if (cp < 0x10000) {
      out += "\\u" + hex(cp, 4);
    } else {
      out += "\\U" + hex(cp, 8);
    }
  }
  return out + '"';
}
