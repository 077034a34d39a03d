/**
 * How the shared state is laid out in Redis, and the text of its records, replies and messages.
 *
 * Redis keys of a namespace (in braces, so that all hash to one Redis Cluster slot):
 * - `{ns}:state`, a hash. One field per key: the key's fingerprint (SHA-256, 64 hex digits, as
 *   `router.snapshot()[i].id`), value `"<version>|<status>|<until>|<reason>"`, such as
 *   `"7|cooldown|1767225600000|rate_limit"`; and one per key and scope in which the key has a state,
 *   `"<fingerprint>/<escaped scope>"`, with a value of the same form. `until` is an integer of
 *   wall-clock epoch ms: for a cooldown when it ends; for `ready`, since when (a clear's time; pruning
 *   reads it); else 0. Reasons and scopes are escaped by {@link escapeText} (no `|`, space or `/`
 *   left); a `ready` record has no reason, and a record without one reads as `"manual"`. Bookkeeping
 *   fields, all shorter than a fingerprint: `epoch` (an id the first writer gives the state: a loss of
 *   the hash shows as a new epoch), `seq` (the namespace's change counter: every batch that changes
 *   something takes the next number, and it is the version of every record it writes, so a record
 *   written later always has a higher version, also after the record was deleted), and `sweep` (the
 *   pruning cursor).
 * - `{ns}:scopes`, a sorted set of the scoped fields, all at score 0: a key's are one range by name
 *   (a key-wide clear clears them, a load reads them, pruning a key removes them).
 * - `{ns}:held`, a sorted set: fingerprint → until when some instance said it holds the key. A key
 *   nobody announces for a day is removed with its records.
 * - `{ns}:batch:<instance>`: the number of the last batch an instance wrote (a batch sent twice is
 *   applied once). Expires after 6 hours; deleted by `close()`.
 * - `{ns}:changes`, the channel: `"<instance> <epoch> <seq> <entry> <entry>…"`, one message per batch
 *   that changed something, with `entry` = `"<field>|<status>|<until>|<reason>"` (version: the
 *   message's seq).
 *
 * Room to grow, kept by every reader: a record or entry may carry more `|`-separated parts after the
 * reason, which are ignored. Readers of the version before scopes skip scoped fields, and a key-wide
 * clear they write leaves the key's scoped records as they are.
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
  scopesKey: string;
  channel: string;
}

/** @internal */
export function layoutOf(namespace: string, instanceId: string): Layout {
  const prefix = `{${namespace}}`;
  return {
    stateKey: `${prefix}:state`,
    batchKey: `${prefix}:batch:${instanceId}`,
    heldKey: `${prefix}:held`,
    scopesKey: `${prefix}:scopes`,
    channel: `${prefix}:changes`,
  };
}

const STATUS_RANK: Record<string, number> = { ready: 0, cooldown: 1, blocked: 2, disabled: 3 };

/**
 * Reads `"<status>|<until>…"` starting at `from` of `text` (up to `end`) into `out`: `out[0]` the
 * rank, `out[1]` until. Returns where `until` ends (a `|` there starts the reason), or -1 when
 * malformed. No regular expression and no substring for the number: this runs once per key per
 * message received.
 * @internal
 */
export function readState(text: string, from: number, end: number, out: Float64Array): number {
  const bar = text.indexOf("|", from);
  if (bar < 0 || bar >= end) return -1;
  const rank = STATUS_RANK[text.slice(from, bar)];
  if (rank === undefined) return -1;
  let until = 0;
  let at = bar + 1;
  const start = at;
  for (; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code === 124) break; // "|": more parts follow (the reason)
    if (code < 48 || code > 57) return -1;
    until = until * 10 + (code - 48);
  }
  if (at === start || at - start > 16) return -1;
  out[0] = rank;
  out[1] = until;
  return at;
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
 * Parses a record `"<version>|<status>|<until>…"` (of `text`, from `from` up to `end`) into `out`
 * (`out[2]` the version). Returns where `until` ends, or -1 when malformed.
 * @internal
 */
export function readRecord(text: string, out: Float64Array, from = 0, end = text.length): number {
  const bar = text.indexOf("|", from);
  const version = bar < 0 || bar >= end ? -1 : readCount(text, from, bar);
  const at = version < 0 ? -1 : readState(text, bar + 1, end, out);
  if (at >= 0) out[2] = version;
  return at;
}

/** The longest escaped reason shared; a longer one travels as none (read as `"manual"`). @internal */
export const MAX_REASON_LENGTH = 1_000;
/** Reasons escaped and read back, remembered: a router has a few, and they recur in every message. */
const escaped = new Map<string, string>();
const unescaped = new Map<string, string | undefined>();
const REMEMBERED = 512;

/** A reason as records carry it: escaped ({@link escapeText}), `""` for none or one too long. @internal */
export function reasonText(reason: string): string {
  let text = escaped.get(reason);
  if (text === undefined) {
    text = escapeText(reason);
    if (text.length > MAX_REASON_LENGTH) text = "";
    if (escaped.size >= REMEMBERED) escaped.clear();
    escaped.set(reason, text);
  }
  return text;
}

/**
 * The reason that follows `until` in `text` (`at` is where `until` ended, as {@link readState} says),
 * up to the next `|` or `end`; `undefined` when there is none, or it is not one {@link escapeText}
 * could have made (a forged or corrupt record: its state still counts).
 * @internal
 */
export function readReason(text: string, at: number, end: number): string | undefined {
  if (at >= end || text.charCodeAt(at) !== 124) return undefined;
  let stop = text.indexOf("|", at + 1);
  if (stop < 0 || stop > end) stop = end;
  if (stop === at + 1 || stop - at - 1 > MAX_REASON_LENGTH) return undefined;
  const part = text.slice(at + 1, stop);
  let reason = unescaped.get(part);
  if (reason === undefined && !unescaped.has(part)) {
    reason = unescapeText(part);
    if (unescaped.size >= REMEMBERED) unescaped.clear();
    unescaped.set(part, reason);
  }
  return reason;
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
