import { createHash } from "node:crypto";
import type { RedisLike } from "./client.js";

/**
 * Applies one batch of key transitions from one instance to the shared state, atomically, and
 * publishes what changed. Per key: a cooldown that has ended counts as ready; mode 1 (clear) sets
 * ready first; a raise never lowers the state and a cooldown never shortens a longer one. A changed
 * key gets its version incremented. The reply is the shared state's epoch, then every key's state
 * after the batch, changed or not, so the writer learns when the shared state differs from what it
 * did locally, or when Redis lost it (a new epoch).
 * @internal
 */
export const APPLY_SCRIPT = `
-- KEYS[1]: the hash of shared key states: field = key fingerprint (SHA-256 hex),
--          value = "<version>|<status>|<until>" (until: cooldown end, wall-clock epoch ms, else 0);
--          and the field "epoch": an id the first writer gives the state, so that a loss (a restart
--          without persistence, FLUSHDB, eviction) shows as a new epoch
-- KEYS[2]: the number of the last batch this instance wrote, so that a batch sent twice is applied once
-- ARGV[1]: the channel that changes are published on
-- ARGV[2]: the writing instance's id: the message's first word, so that the writer can skip its own
-- ARGV[3]: this batch's number, increasing per instance
-- ARGV[4]: now, wall-clock epoch ms: a stored cooldown ending at or before it counts as ready
-- ARGV[5]: the epoch to give the state if it has none
-- ARGV[6..9], then again for each further key:
--   [6] the key's fingerprint
--   [7] the mode: "0" raise, "1" set ready first (clearCooldown), "2" offer: raise unless the record is
--       "ready" (a clear, newer than the state offered)
--   [8] the raise: "0" none, "1" cooldown, "2" blocked, "3" disabled (never lowers the state)
--   [9] for a cooldown, when it ends, wall-clock epoch ms (an integer); a longer stored one is kept
-- Returns the epoch, then per key in order: "<fingerprint>|<version>|<status>|<until>", the state
-- after the batch. Publishes "<instance> <epoch> <entry> <entry>..." with the entries that changed.
local RANK = { ready = 0, cooldown = 1, blocked = 2, disabled = 3 }
local NAME = { [0] = "ready", [1] = "cooldown", [2] = "blocked", [3] = "disabled" }
local now = tonumber(ARGV[4])
local epoch = redis.call("HGET", KEYS[1], "epoch")
if not epoch then
  epoch = ARGV[5]
  redis.call("HSET", KEYS[1], "epoch", epoch)
end
local replay = tonumber(ARGV[3]) <= tonumber(redis.call("GET", KEYS[2]) or "0")
if not replay then redis.call("SET", KEYS[2], ARGV[3], "PX", 86400000) end
local results, changes = { epoch }, {}
for i = 6, #ARGV, 4 do
  local id, mode, raise, target = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local version, rank, ends, found = 0, 0, "0", false
  local record = redis.call("HGET", KEYS[1], id)
  if record then
    local v, s, u = string.match(record, "^(%d+)|(%a+)|(%d+)$")
    if v and RANK[s] then version, rank, ends, found = tonumber(v), RANK[s], u, true end
  end
  local cleared = found and rank == 0
  if rank == 1 and tonumber(ends) <= now then rank, ends = 0, "0" end
  local new_rank, new_ends = rank, ends
  if not replay and not (mode == "2" and cleared) then
    if mode == "1" then new_rank, new_ends = 0, "0" end
    if raise == 1 then
      local t = tonumber(target)
      if t > now and (new_rank == 0 or (new_rank == 1 and t > tonumber(new_ends))) then new_rank, new_ends = 1, target end
    elseif raise > new_rank then
      new_rank, new_ends = raise, "0"
    end
  end
  -- A clear of a key with no record leaves one ("ready"), so that an older state offered later loses to it.
  if new_rank ~= rank or new_ends ~= ends or (mode == "1" and not found and not replay) then
    version = version + 1
    redis.call("HSET", KEYS[1], id, string.format("%d|%s|%s", version, NAME[new_rank], new_ends))
    changes[#changes + 1] = string.format("%s|%d|%s|%s", id, version, NAME[new_rank], new_ends)
  end
  results[#results + 1] = string.format("%s|%d|%s|%s", id, version, NAME[new_rank], new_ends)
end
if #changes > 0 then redis.call("PUBLISH", ARGV[1], ARGV[2] .. " " .. epoch .. " " .. table.concat(changes, " ")) end
return results
`;

/** SHA-1 of {@link APPLY_SCRIPT}, for `EVALSHA`. @internal */
export const APPLY_SCRIPT_SHA = createHash("sha1").update(APPLY_SCRIPT).digest("hex");

/**
 * Runs the script by its SHA-1 and, when the server does not have it cached (`NOSCRIPT`, such as
 * after a restart or `SCRIPT FLUSH`), by its text, which caches it again.
 * @internal
 */
export async function evalApplyScript(redis: RedisLike, keys: readonly [string, string], args: readonly string[]): Promise<unknown> {
  try {
    return await redis.evalsha(APPLY_SCRIPT_SHA, keys.length, ...keys, ...args);
  } catch (error) {
    if (!isNoScriptError(error)) throw error;
    return await redis.eval(APPLY_SCRIPT, keys.length, ...keys, ...args);
  }
}

function isNoScriptError(error: unknown): boolean {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === "string" && message.startsWith("NOSCRIPT");
}
