/**
 * How a batch reaches Redis: one Lua script, atomic, that merges an instance's transitions into the
 * shared state by the rules of merge.ts, publishes what changed, and prunes a little on the way. The
 * same script with no transition is the link's heartbeat; with every key as a read it is the load.
 * @internal
 */
import { createHash } from "node:crypto";
import type { Connection } from "./client.js";

/** @internal */
export const APPLY_SCRIPT = `
-- KEYS[1]: the hash of shared states (see record.ts): "<fingerprint>" = "<version>|<status>|<until>",
--          and the fields "epoch", "seq" (the change counter) and "sweep" (the pruning cursor)
-- KEYS[2]: the number of the last batch this instance wrote, so that a batch sent twice is applied once
-- KEYS[3]: the sorted set of held keys: fingerprint -> until when some instance holds the key
-- ARGV[1]: the channel that changes are published on
-- ARGV[2]: the writing instance's id: the message's first word, so that the writer can skip its own
-- ARGV[3]: this batch's number, increasing per instance ("0": no transition, nothing to guard)
-- ARGV[4]: now, wall-clock epoch ms (an integer): a cooldown ending at or before it counts as ready
-- ARGV[5]: the epoch to give the state if it has none (or an unreadable one)
-- ARGV[6]: until when the keys of this batch are held (an integer, ms)
-- ARGV[7]: how long a ready record (a clear, an ended cooldown) is kept, ms
-- ARGV[8]: how long KEYS[2] lives, ms
-- ARGV[9]: how many hash fields to look over for pruning ("0": none)
-- ARGV[10..13], then again for each further key:
--   [10] the key's fingerprint
--   [11] the mode: "0" raise, "1" set ready first (clear), "2" offer: raise unless the record is
--        "ready", "3" restore: raise only if there is no record
--   [12] the raise: "0" none (a read), "1" cooldown, "2" blocked, "3" disabled (never lowers the state)
--   [13] for a cooldown, when it ends, wall-clock epoch ms (an integer); a longer stored one is kept
-- Returns the epoch, the counter, then per key in order "<version>|<status>|<until>": its record after
-- the batch ("0|ready|0": none). Publishes "<instance> <epoch> <counter> <fingerprint>|<status>|<until>..."
-- when something changed; every record it writes gets the new counter as its version.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local RANK = { ready = 0, cooldown = 1, blocked = 2, disabled = 3 }
local NAME = { [0] = "ready", "cooldown", "blocked", "disabled" }
local state, guard, held = KEYS[1], KEYS[2], KEYS[3]
local now, retain = tonumber(ARGV[4]), tonumber(ARGV[7])
local function integer(text, digits)
  return type(text) == "string" and #text >= 1 and #text <= digits and string.match(text, "^%d+$") ~= nil
end
-- A record this script could not have written reads as none (and is replaced by the next change).
local function read(record)
  if type(record) ~= "string" then return nil end
  local v, s, u = string.match(record, "^(%d+)|(%a+)|(%d+)")
  if v and RANK[s] and integer(v, 15) and integer(u, 16) then return tonumber(v), RANK[s], u end
  return nil
end
local epoch = redis.call("HGET", state, "epoch")
if not epoch or #epoch > 40 or not string.match(epoch, "^[%w%-]+$") then
  epoch = ARGV[5]
  redis.call("HSET", state, "epoch", epoch)
end
local seq = redis.call("HGET", state, "seq")
seq = integer(seq, 15) and tonumber(seq) or 0
local replay = false
if ARGV[3] ~= "0" then
  replay = tonumber(ARGV[3]) <= (tonumber(redis.call("GET", guard) or "0") or 0)
  if not replay then redis.call("SET", guard, ARGV[3], "PX", ARGV[8]) end
end

-- The keys of this batch are held (by the writer), then pruning: keys nobody announced holding
-- (ARGV[6] of every call that carried them has passed).
for i = 10, #ARGV, 4 do redis.call("ZADD", held, ARGV[6], ARGV[i]) end
local gone = redis.call("ZRANGEBYSCORE", held, "-inf", now, "LIMIT", 0, 500)
for _, id in ipairs(gone) do
  redis.call("HDEL", state, id)
  redis.call("ZREM", held, id)
end
-- ...and a few fields more on each heartbeat: ready records older than ARGV[7], unreadable ones, and
-- records of keys that no instance announced (from an older version) get a day's grace.
if ARGV[9] ~= "0" then
  local scan = redis.call("HSCAN", state, redis.call("HGET", state, "sweep") or "0", "COUNT", ARGV[9])
  redis.call("HSET", state, "sweep", scan[1])
  for j = 1, #scan[2], 2 do
    local id = scan[2][j]
    if #id >= 64 then
      local v, r, u = read(scan[2][j + 1])
      if not v or (r <= 1 and tonumber(u) + retain <= now) then
        redis.call("HDEL", state, id)
      elseif not redis.call("ZSCORE", held, id) then
        redis.call("ZADD", held, ARGV[6], id)
      end
    end
  end
end

local count = (#ARGV - 9) / 4
local found, ranks, ends, results, changed = {}, {}, {}, {}, {}
for k = 1, count do
  local i = 6 + 4 * k
  local id, mode, raise, target = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]) or 0, ARGV[i + 3]
  local version, rank, stored = read(redis.call("HGET", state, id))
  local present = version ~= nil
  if not present then version, rank, stored = 0, 0, "0" end
  -- A version far ahead of the counter is corrupt or forged: it keeps its state, not its place.
  if version > seq + 2147483648 then version = seq end
  if version > seq then seq = version end
  -- The state as it stands now: an ended cooldown is ready.
  local live, live_until = rank, stored
  if rank == 1 and tonumber(stored) <= now then live, live_until = 0, "0" end
  local r, u = live, live_until
  if not replay and not (mode == "2" and present and rank == 0) and not (mode == "3" and present) then
    if mode == "1" and (live ~= 0 or not present) then r, u = 0, ARGV[4] end
    if raise == 1 then
      if integer(target, 16) and tonumber(target) > now and (r == 0 or (r == 1 and tonumber(target) > tonumber(u))) then r, u = 1, target end
    elseif raise > r and raise <= 3 then
      r, u = raise, "0"
    end
  end
  if r ~= live or (r == 1 and u ~= live_until) or (mode == "1" and not present and not replay) then
    changed[#changed + 1] = k
    ranks[k], ends[k] = r, u
  else
    results[k] = string.format("%d|%s|%s", version, NAME[rank], stored)
  end
  found[k] = id
end
local entries = {}
if #changed > 0 then
  seq = seq + 1
  redis.call("HSET", state, "seq", string.format("%d", seq))
  for _, k in ipairs(changed) do
    local value = string.format("%s|%s", NAME[ranks[k]], ends[k])
    redis.call("HSET", state, found[k], string.format("%d|%s", seq, value))
    results[k] = string.format("%d|%s", seq, value)
    entries[#entries + 1] = found[k] .. "|" .. value
  end
  redis.call("PUBLISH", ARGV[1], ARGV[2] .. " " .. epoch .. " " .. string.format("%d", seq) .. " " .. table.concat(entries, " "))
end
local reply = { epoch, string.format("%d", seq) }
for k = 1, count do reply[k + 2] = results[k] end
return reply
`;

/** SHA-1 of {@link APPLY_SCRIPT}, for `EVALSHA`. @internal */
export const APPLY_SCRIPT_SHA = createHash("sha1").update(APPLY_SCRIPT).digest("hex");

/**
 * Runs the script by its SHA-1 and, when the server does not have it cached (`NOSCRIPT`, such as
 * after a restart or `SCRIPT FLUSH`), by its text, which caches it again.
 * @internal
 */
export async function runApplyScript(connection: Connection, keys: string[], args: string[]): Promise<unknown> {
  try {
    return await connection.evalsha(APPLY_SCRIPT_SHA, keys, args);
  } catch (error) {
    if (!isNoScriptError(error)) throw error;
    return await connection.eval(APPLY_SCRIPT, keys, args);
  }
}

function isNoScriptError(error: unknown): boolean {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === "string" && message.includes("NOSCRIPT");
}
