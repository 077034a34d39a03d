/**
 * How the shared state is laid out in Redis, and the merge rule the script applies, mirrored here so
 * that an instance can predict the result of transitions it has not written yet.
 *
 * - `{<namespace>}:state`: a hash, one field per key that ever changed state. The field is the key's
 *   fingerprint (SHA-256, 64 hex digits, as `router.snapshot()[i].id`); the value is
 *   `"<version>|<status>|<until>"`, such as `"7|cooldown|1767225600000"`: a version the script increments
 *   on each change, the status name, and for a cooldown its end as wall-clock epoch milliseconds (else 0).
 *   One more field, `epoch`, holds an id the first writer gives the state: when Redis loses the hash (a
 *   restart without persistence, `FLUSHDB`, eviction), the next write starts a new epoch, and every
 *   instance learns from it that the versions it knew are void and that Redis needs its states again.
 * - `{<namespace>}:batch:<instance>`: the number of the last batch an instance wrote, so that a batch
 *   sent twice (a reply lost to a dropped connection, then a resend) is applied once. Expires after a day.
 * - `{<namespace>}:changes`: the channel on which the script publishes what changed:
 *   `"<instance> <epoch> <fingerprint>|<version>|<status>|<until> …"`.
 *
 * The namespace is in braces so that both keys hash to the same Redis Cluster slot.
 * @internal
 */

// Severity ranks and status names are the core's own: a raise never lowers a rank, only a clear does.
// (A module of constants only: the Redis entry bundles it, not the router.)
import { BLOCKED, COOLDOWN, DISABLED, READY, STATUS_NAMES } from "./core.js";

export { BLOCKED, COOLDOWN, DISABLED, READY, STATUS_NAMES };

/**
 * What the script does with one key's transition. `RAISE`: raise the state (never lowers it).
 * `CLEAR`: set the key ready first (`clearCooldown`), then raise. `OFFER`: raise unless the record is
 * `ready`, a clear made since: an instance's own state of unknown age (a restore, marks made while
 * detached, states Redis lost) loses to a clear, but never to a milder mark (a stale 429 cannot undo
 * a 401).
 * @internal
 */
export const RAISE = 0;
/** @internal */
export const CLEAR = 1;
/** @internal */
export const OFFER = 2;

/** The hash field that holds the shared state's epoch; fingerprints are 64 hex digits, so no key's. @internal */
export const EPOCH_FIELD = "epoch";

/** Redis key and channel names of a namespace. @internal */
export interface Layout {
  stateKey: string;
  batchKey: string;
  channel: string;
}

/** @internal */
export function layoutOf(namespace: string, instanceId: string): Layout {
  const prefix = `{${namespace}}`;
  return { stateKey: `${prefix}:state`, batchKey: `${prefix}:batch:${instanceId}`, channel: `${prefix}:changes` };
}

/** One key's shared state as read from Redis: `until` is 0 unless the rank is `COOLDOWN`. @internal */
export interface SharedEntry {
  id: string;
  version: number;
  rank: number;
  until: number;
}

const ENTRY = /^([0-9a-f]{64})\|(\d{1,15})\|(ready|cooldown|blocked|disabled)\|(\d{1,16})$/;
const RECORD = /^(\d{1,15})\|(ready|cooldown|blocked|disabled)\|(\d{1,16})$/;

/** Parses `"<fingerprint>|<version>|<status>|<until>"` (a script reply or a message entry). @internal */
export function parseEntry(text: string): SharedEntry | undefined {
  const match = ENTRY.exec(text);
  if (match === null) return undefined;
  return { id: match[1]!, version: Number(match[2]), rank: rankOf(match[3]!), until: Number(match[4]) };
}

/** Parses a hash value `"<version>|<status>|<until>"` of the key `id`. @internal */
export function parseRecord(id: string, text: string): SharedEntry | undefined {
  const match = RECORD.exec(text);
  if (match === null) return undefined;
  return { id, version: Number(match[1]), rank: rankOf(match[2]!), until: Number(match[3]) };
}

function rankOf(status: string): number {
  return (STATUS_NAMES as readonly string[]).indexOf(status);
}

/**
 * The state after a transition, by the script's rule: a cooldown that has ended counts as ready; a
 * clear sets ready; a raise never lowers the state, and a cooldown never shortens a longer one (nor
 * counts when it has ended already). Returns `[rank, until]`.
 * @internal
 */
export function merge(rank: number, until: number, mode: number, raise: number, raiseUntil: number, now: number): [number, number] {
  if (rank === COOLDOWN && until <= now) (rank = READY), (until = 0);
  if (mode === CLEAR) (rank = READY), (until = 0);
  if (raise === COOLDOWN) {
    if (raiseUntil > now && (rank === READY || (rank === COOLDOWN && raiseUntil > until))) (rank = COOLDOWN), (until = raiseUntil);
  } else if (raise > rank) {
    (rank = raise), (until = 0);
  }
  return [rank, until];
}
