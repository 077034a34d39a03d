/**
 * How a transition meets a key's state: the rule the Lua script applies in Redis, mirrored here so
 * that an instance can predict the result of its transitions not yet answered.
 *
 * Invariants (each has a test in test/redis*.test.ts):
 * 1. Only a clear lowers a state. A raise never lowers it, and a cooldown never shortens a longer one.
 *    So a stale 429 never undoes a fresh 401, in any order of arrival.
 * 2. A cooldown whose end has passed is ready; it needs no message.
 * 3. The router holds: the newest shared state known, with this instance's transitions in flight,
 *    then those not yet sent, merged on top by rule 1. A change from elsewhere never lowers a local
 *    transition Redis has not answered.
 * 4. A newer version is a later state: the namespace's counter gives each change the next number, so
 *    within an epoch a record written later has a higher version, even after it was deleted.
 * 5. The reply to an instance's own write is the newest state of its keys when the script ran. A reply
 *    older than a state known from before it (possible only if someone reset the counter) makes the
 *    instance load the key again; it never reverts the key silently.
 * 6. What comes from Redis is bounded before use: deadlines at `maxRetryAfterMs` from now, versions
 *    at 2^31 past the newest known.
 * 7. A clear wins over every record written before it: it takes the next version, which is higher.
 * 8. A state of unknown age (a restore, marks made while detached, states Redis lost) is offered: it
 *    raises the record unless the record is a clear (`ready`), which is newer.
 * @internal
 */
/** Severity ranks, as the core's: a raise never lowers a rank, only a clear does. @internal */
export const READY = 0;
/** @internal */
export const COOLDOWN = 1;
/** @internal */
export const BLOCKED = 2;
/** @internal */
export const DISABLED = 3;
/** @internal */
export const STATUS_NAMES = ["ready", "cooldown", "blocked", "disabled"] as const;

/** A fresh mark: raise the state (never lowers it). @internal */
export const RAISE = 0;
/** `clearCooldown`: set the key ready first, then raise. @internal */
export const CLEAR = 1;
/** A state of unknown age: raise unless the record is `ready` (a clear made since). @internal */
export const OFFER = 2;
/** A state Redis may have lost: raise only when there is no record at all. @internal */
export const RESTORE = 3;

/**
 * The state after a transition, by the script's rule (OFFER and RESTORE are predicted to apply; the
 * reply says whether they did). Writes `[rank, until, raised]` into `out`: `raised` is 1 when the
 * state is the transition's raise (and carries its reason), else 0 (the state before, or a clear).
 * @internal
 */
export function merge(rank: number, until: number, mode: number, raise: number, raiseUntil: number, now: number, out: Float64Array): void {
  let raised = 0;
  if (rank === COOLDOWN && until <= now) (rank = READY), (until = 0);
  if (mode === CLEAR) (rank = READY), (until = 0);
  if (raise === COOLDOWN) {
    if (raiseUntil > now && (rank === READY || (rank === COOLDOWN && raiseUntil > until))) (rank = COOLDOWN), (until = raiseUntil), (raised = 1);
  } else if (raise > rank) {
    (rank = raise), (until = 0), (raised = 1);
  }
  out[0] = rank;
  out[1] = rank === COOLDOWN ? until : 0;
  out[2] = raised;
}

/**
 * Folds a new transition into a key's pending one (`pending` = `[mode, raise, until]`, updated in
 * place): a clear makes what came before it moot; otherwise the highest raise and the latest cooldown
 * end are kept, and a fresh mark at least as severe as a state offered turns the offer into a raise
 * (a clear in Redis no longer stops it). Returns whether the new transition's reason is the one to
 * keep: it is the clear, or it raises higher, or it is a later cooldown.
 * @internal
 */
export function fold(pending: Float64Array, at: number, mode: number, raise: number, until: number): boolean {
  if (mode === CLEAR) {
    pending[at] = CLEAR;
    pending[at + 1] = raise;
    pending[at + 2] = until;
    return true;
  }
  const pendingMode = pending[at]!;
  const pendingRaise = pending[at + 1]!;
  const takes = raise > pendingRaise || (raise === COOLDOWN && pendingRaise === COOLDOWN && until > pending[at + 2]!);
  if (mode === RAISE && (pendingMode === OFFER || pendingMode === RESTORE) && raise >= pendingRaise) pending[at] = RAISE;
  if (raise > pendingRaise) pending[at + 1] = raise;
  if (until > pending[at + 2]!) pending[at + 2] = until;
  return takes;
}
