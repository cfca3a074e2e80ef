// One download feeding two readers at the pace of the slower: the content store (which checks the
// digest) and whatever unpacks the blob meanwhile.
import { PassThrough, type Readable, type Writable } from "node:stream";
import type { ContentStore } from "../content/types.js";
import type { Descriptor } from "../oci/spec.js";

/** Bytes kept for a consumer that is behind, before the download waits for it. */
const CONSUMER_BUFFER = 32 << 20;

/** Resolves once `w` can take more, or is gone (destroyed by its reader's failure). */
function drained(w: Writable): Promise<void> {
  if (w.destroyed || !w.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off("drain", done);
      w.off("close", done);
      resolve();
    };
    w.on("drain", done);
    w.on("close", done);
  });
}

export interface TeeOptions {
  /** `source` fails instead of ending when it is not the blob `desc` (a registry's verified download). */
  readonly sourceVerified?: boolean;
}

/**
 * Writes `source` (the blob `desc`) into `store` and into `consume` at once. Rejects with the first
 * failure of the three; the store keeps the blob only when every byte matched the digest.
 */
export async function teeIntoStore(
  source: Readable,
  store: ContentStore,
  desc: Descriptor,
  consume: (bytes: Readable) => Promise<void>,
  opts: TeeOptions = {},
): Promise<void> {
  const toStore = new PassThrough({ highWaterMark: 4 << 20 });
  // Room for the download to go on while the consumer waits (a layer's parent still being applied).
  const toConsumer = new PassThrough({ highWaterMark: CONSUMER_BUFFER });
  const sinks = [toStore, toConsumer];
  // Failures are reported by the three promises below, not by events.
  for (const s of [source, ...sinks]) s.on("error", () => {});
  let consumerDone = false;
  /** Stops both copies. A reader already done (the digest is found wrong only at the end, after
   * the unpacking) is not handed the error: whatever it piped on to has no one listening now. */
  const stop = (err: unknown) => {
    toStore.destroy(err as Error);
    toConsumer.destroy(consumerDone ? undefined : (err as Error));
  };
  const pump = (async () => {
    try {
      for await (const chunk of source) {
        for (const s of sinks) if (!s.destroyed) s.write(chunk);
        await Promise.all(sinks.map(drained));
        if (sinks.every((s) => s.destroyed)) break;
      }
      for (const s of sinks) s.end();
    } catch (err) {
      stop(err);
      throw err;
    }
  })();
  const fail = (err: unknown) => {
    source.destroy();
    stop(err);
    throw err;
  };
  const settled = await Promise.allSettled([
    pump,
    store
      .write(toStore, {
        expected: desc.digest,
        expectedSize: desc.size,
        // The copy ends only after `source` did, so a source that fails at its end fails this too.
        sourceVerified: opts.sourceVerified,
      })
      .catch(fail),
    consume(toConsumer).then(() => {
      consumerDone = true;
      // A reader done before the end (a tar's end-of-archive blocks) must not stall the store's copy.
      toConsumer.resume();
    }, fail),
  ]);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}
