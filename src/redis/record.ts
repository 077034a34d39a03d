/**
 * How the shared state is laid out in Redis, and the text of its records, replies and messages.
 *
 * Redis keys of a namespace (in braces, so that all hash to one Redis Cluster slot):
 * - `{ns}:state`, a hash. One field per key: the key's fingerprint (SHA-256, 64 hex digits, as
 *   `router.snapshot()[i].id`), value `"<version>|<status>|<until>"`, such as
 *   `"7|cooldown|1767225600000"`. `until` is an integer of wall-clock epoch ms: for a cooldown when it
 *   ends; for `ready`, since when (a clear's time; pruning reads it); else 0. Bookkeeping fields, all
 *   shorter than a fingerprint: `epoch` (an id the first writer gives the state: a loss of the hash
 *   shows as a new epoch), `seq` (the namespace's change counter: every batch that changes something
 *   takes the next number, and it is the version of every record it writes, so a record written later
 *   always has a higher version, also after the record was deleted), and `sweep` (the pruning cursor).
 * - `{ns}:held`, a sorted set: fingerprint → until when some instance said it holds the key. A key
 *   nobody announces for a day is removed with its record.
 * - `{ns}:batch:<instance>`: the number of the last batch an instance wrote (a batch sent twice is
 *   applied once). Expires after 6 hours; deleted by `close()`.
 * - `{ns}:changes`, the channel: `"<instance> <epoch> <seq> <entry> <entry>…"`, one message per batch
 *   that changed something, with `entry` = `"<field>|<status>|<until>"` (version: the message's seq).
 *
 * Room to grow, kept by every reader today: a record or entry may carry more `|`-separated parts after
 * `until` (a reason, escaped by {@link escapeText}), which are ignored; and a field may be
 * `"<fingerprint>/<escaped scope>"` (one record per key and scope), which readers that know no scopes
 * skip without calling it malformed.
 * @internal
 */

/** The hash fields that are not keys' records; each is shorter than a fingerprint. @internal */
export const EPOCH_FIELD = "epoch";
/** @internal */
export const SEQ_FIELD = "seq";

/** The latest deadline written or read: the largest `Date` (integer, 16 digits, exact in a double). @internal */
export const MAX_UNTIL = 8_640_000_000_000_000;
/** A version more than this ahead of the newest one known is refused as corrupt. @internal */
export const MAX_VERSION_AHEAD = 2 ** 31;

/** Redis key and channel names of a namespace. @internal */
export interface Layout {
  stateKey: string;
  batchKey: string;
  heldKey: string;
  channel: string;
}

/** @internal */
export function layoutOf(namespace: string, instanceId: string): Layout {
  const prefix = `{${namespace}}`;
  return { stateKey: `${prefix}:state`, batchKey: `${prefix}:batch:${instanceId}`, heldKey: `${prefix}:held`, channel: `${prefix}:changes` };
}

const STATUS_RANK: Record<string, number> = { ready: 0, cooldown: 1, blocked: 2, disabled: 3 };

/**
 * Reads `"<status>|<until>…"` starting at `from` of `text` (up to `end`) into `out`: `out[0]` the
 * rank, `out[1]` until. Returns false when malformed. No regular expression and no substring for
 * the number: this runs once per key per message received.
 * @internal
 */
export function readState(text: string, from: number, end: number, out: Float64Array): boolean {
  const bar = text.indexOf("|", from);
  if (bar < 0 || bar >= end) return false;
  const rank = STATUS_RANK[text.slice(from, bar)];
  if (rank === undefined) return false;
  let until = 0;
  let at = bar + 1;
  const start = at;
  for (; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code === 124) break; // "|": more parts follow (a reason, later)
    if (code < 48 || code > 57) return false;
    until = until * 10 + (code - 48);
  }
  if (at === start || at - start > 16) return false;
  out[0] = rank;
  out[1] = until;
  return true;
}

/** Parses a decimal integer of 1 to 15 digits, else -1. @internal */
export function readCount(text: string, from = 0, end = text.length): number {
  if (end <= from || end - from > 15) return -1;
  let value = 0;
  for (let at = from; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code < 48 || code > 57) return -1;
    value = value * 10 + (code - 48);
  }
  return value;
}

/**
 * Parses a script reply's entry `"<version>|<status>|<until>…"` into `out` (`out[2]` the version).
 * @internal
 */
export function readRecord(text: string, out: Float64Array): boolean {
  const bar = text.indexOf("|");
  const version = bar < 0 ? -1 : readCount(text, 0, bar);
  if (version < 0 || !readState(text, bar + 1, text.length, out)) return false;
  out[2] = version;
  return true;
}

/**
 * A string made safe for a record, a field or a message (no space, `|`, `/`, `%`, control character or
 * lone surrogate left): `%XX` for each UTF-8 byte outside `[A-Za-z0-9._~-]`. For the reasons and scopes
 * records will carry.
 * @internal
 */
export function escapeText(text: string): string {
  // A lone surrogate becomes U+FFFD rather than throwing.
  return encodeURIComponent(text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD")).replace(
    /[!'()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The inverse of {@link escapeText}; `undefined` for text it could not have made. @internal */
export function unescapeText(text: string): string | undefined {
  if (!/^(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})*$/.test(text)) return undefined;
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
