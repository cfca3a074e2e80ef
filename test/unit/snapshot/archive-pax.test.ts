import assert from "node:assert/strict";
import fc from "fast-check";
import { decodePaxRecords, encodePaxRecords } from "../../../src/archive/pax.js";

describe("PAX records", () => {
  it("round-trip any key and any binary value byte for byte", () => {
    const key = fc
      .string({ minLength: 1, maxLength: 40 })
      .filter((k) => !k.includes("=") && !k.includes("\0"));
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(key, fc.uint8Array({ maxLength: 300 })), { selector: ([k]) => k }),
        (records) => {
          const encoded = encodePaxRecords(records.map(([k, v]) => [k, Buffer.from(v)] as const));
          const decoded = decodePaxRecords(encoded);
          assert.equal(decoded.size, records.length);
          for (const [k, v] of records) assert.ok(decoded.get(k)?.equals(Buffer.from(v)), k);
        },
      ),
    );
  });

  it("counts the length prefix's own digits, across a digit boundary", () => {
    // " k=" + 4 value bytes + newline is 8 bytes, so "9" in front makes 9. With 94 value bytes the
    // body is 98: two digits would make 100, which has three, so the record is 101 long.
    assert.equal(encodePaxRecords([["k", "abcd"]]).toString(), "9 k=abcd\n");
    const long = encodePaxRecords([["k", "v".repeat(94)]]).toString();
    assert.equal(long.length, 101);
    assert.ok(long.startsWith("101 k="));
  });

  it("rejects a record whose length runs past the header", () => {
    assert.throws(() => decodePaxRecords(Buffer.from("50 path=x\n")), /malformed PAX header record/);
  });
});
