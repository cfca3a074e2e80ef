// Go's strings.ToLower / strings.ToUpper: rune-by-rune simple case mapping. JavaScript's own
// mappings differ for a few runes (İ lowers to two runes, final sigma depends on context, ß and
// ligatures upper-case to several letters), which would change how an instruction keyword is
// recognised or dumped.

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

function mapRunes(s: string, f: (ch: string) => string): string {
  let out = "";
  for (const ch of s) {
    const m = f(ch);
    // keep the rune when JavaScript's mapping is not a single rune (Go has no simple mapping)
    out += m.length === ch.length || [...m].length === 1 ? m : ch;
  }
  return out;
}

export function goToLower(s: string): string {
  if (isAscii(s)) return s.toLowerCase();
  return mapRunes(s, (ch) => (ch === "\u0130" ? "i" : ch.toLowerCase()));
}

export function goToUpper(s: string): string {
  if (isAscii(s)) return s.toUpperCase();
  return mapRunes(s, (ch) => ch.toUpperCase());
}

/** Go's strings.EqualFold against an ASCII target (the only non-ASCII folds there: ſ ~ s, K ~ k). */
export function equalFoldAscii(s: string, asciiTarget: string): boolean {
  const runes = [...s];
  if (runes.length !== asciiTarget.length) return false;
  return runes.every((r, i) => {
    const t = asciiTarget[i]!.toLowerCase();
    if (r === "\u017f") return t === "s";
    if (r === "\u212a") return t === "k";
    return r.length === 1 && r.charCodeAt(0) < 0x80 && r.toLowerCase() === t;
  });
}
