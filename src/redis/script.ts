/**
 * How a batch reaches Redis: one Lua script, atomic, that merges an instance's transitions into the
 * shared state by the rules of merge.ts, key-wide and per scope, publishes what changed, and prunes a
 * little on the way. The same script with no transition is the link's heartbeat; with every key as a
 * read it is the load.
 * @internal
 */
import { createHash } from "node:crypto";
import type { Connection } from "./client.js";

/** @internal */
export const APPLY_SCRIPT = `
-- KEYS[1]: the hash of shared states (see record.ts): "<fingerprint>" (key-wide) and
--          "<fingerprint>/<escaped scope>" = "<version>|<status>|<until>[|<reason>]", and the fields
--          "epoch", "seq" (the change counter) and "sweep" (the pruning cursor)
-- KEYS[2]: the number of the last batch this instance wrote, so that a batch sent twice is applied once
-- KEYS[3]: the sorted set of held keys: fingerprint -> until when some instance holds the key
-- KEYS[4]: the scoped fields of KEYS[1], all at score 0, so that a key's are one range by name
-- ARGV[1]: the channel that changes are published on
-- ARGV[2]: the writing instance's id: the message's first word, so that the writer can skip its own
-- ARGV[3]: this batch's number, increasing per instance ("0": no transition, nothing to guard)
-- ARGV[4]: now, wall-clock epoch ms (an integer): a cooldown ending at or before it counts as ready
-- ARGV[5]: the epoch to give the state if it has none (or an unreadable one)
-- ARGV[6]: until when the keys of this batch are held (an integer, ms)
-- ARGV[7]: how long a ready record (a clear, an ended cooldown) is kept, ms
-- ARGV[8]: how long KEYS[2] lives, ms
-- ARGV[9]: how many hash fields to look over for pruning ("0": none)
-- ARGV[10]: "1" for a load: return the scoped records of each key-wide field of the batch too
-- ARGV[11]: the batch (absent: none), one argument for all (each argument costs the client more
--   than the text in it): entries "<field>|<mode>|<raise>|<until>|<reason>" separated by spaces, with
--   field: a fingerprint (key-wide), or "<fingerprint>/<escaped scope>"
--   mode: "0" raise, "1" set ready first (clear; key-wide, it clears the key's scoped records too),
--     "2" offer: raise unless the record is "ready", "3" restore: raise only if there is no record
--   raise: "0" none (a read), "1" cooldown, "2" blocked, "3" disabled (never lowers the state)
--   until: for a cooldown, when it ends, wall-clock epoch ms (an integer); a longer stored one is kept
--   reason: the raise's, escaped (record.ts), empty for none: the record's reason when the raise wins
-- Returns one string, parts separated by spaces: the epoch, the counter, then per entry in order
-- "<version>|<status>|<until>[|<reason>]", its record after the batch ("0|ready|0": none); then, in
-- pairs, other fields and their records: the scoped ones a key-wide clear made ready, and for a load
-- the key's scoped records that hold it out.
-- Publishes "<instance> <epoch> <counter> <entry>...", entry = "<field>|<status>|<until>[|<reason>]",
-- when something changed; every record it writes gets the new counter as its version.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local RANK = { ready = 0, cooldown = 1, blocked = 2, disabled = 3 }
local NAME = { [0] = "ready", "cooldown", "blocked", "disabled" }
local state, guard, held, scopes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, retain = tonumber(ARGV[4]), tonumber(ARGV[7])
local function integer(text, digits)
  return type(text) == "string" and #text >= 1 and #text <= digits and string.match(text, "^%d+$") ~= nil
end
-- A reason as an instance escapes it, or none.
local function reason(text)
  if type(text) == "string" and #text <= 1000 and string.match(text, "^[%w%%._~-]*$") then return text end
  return ""
end
-- A record this script could not have written reads as none (and is replaced by the next change).
local function read(record)
  if type(record) ~= "string" then return nil end
  local v, s, u, rest = string.match(record, "^(%d+)|(%a+)|(%d+)(.*)$")
  if v and RANK[s] and integer(v, 15) and integer(u, 16) then return tonumber(v), RANK[s], u, reason(string.match(rest, "^|([^|]*)")) end
  return nil
end
-- The text after the version: "<status>|<until>", and "|<reason>" for a key held out with one.
local function state_text(rank, until_text, why)
  if rank == 0 or why == "" then return NAME[rank] .. "|" .. until_text end
  return NAME[rank] .. "|" .. until_text .. "|" .. why
end
-- A key's scoped fields: those of KEYS[4] between "<fingerprint>/" and "<fingerprint>0" ("0" follows "/").
local function scoped_fields(id)
  return redis.call("ZRANGEBYLEX", scopes, "[" .. id .. "/", "(" .. id .. "0")
end
-- ...those an instance could have written: a space or "|" (someone else's field) would break the
-- reply and the message, which are made of fields and records separated by them.
local function scoped(id)
  local fields = {}
  for _, field in ipairs(scoped_fields(id)) do
    if not string.find(field, "[%s|]") then fields[#fields + 1] = field end
  end
  return fields
end
-- Removes a field, and a key-wide one's scoped fields with it.
local function remove(id)
  redis.call("HDEL", state, id)
  if #id == 64 then
    for _, field in ipairs(scoped_fields(id)) do redis.call("HDEL", state, field) end
    redis.call("ZREMRANGEBYLEX", scopes, "[" .. id .. "/", "(" .. id .. "0")
  else
    redis.call("ZREM", scopes, id)
  end
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

-- The batch's entries.
local ids, modes, raises, targets, whys = {}, {}, {}, {}, {}
for entry in string.gmatch(ARGV[11] or "", "%S+") do
  local id, mode, raise, target, why = string.match(entry, "^([^|]+)|(%d)|(%d)|([^|]*)|([^|]*)$")
  -- One this script's instances would not send is a read of the field it names: it still gets its
  -- record in the reply, in its place.
  if not id then id, mode, raise, target, why = string.match(entry, "^[^|]*"), "0", "0", "0", "" end
  local n = #ids + 1
  ids[n], modes[n], raises[n], targets[n], whys[n] = id, mode, tonumber(raise), target, why
end
local count = #ids

-- The keys of this batch are held (by the writer), then pruning: keys nobody announced holding
-- (ARGV[6] of every call that carried them has passed), with their scoped records.
for k = 1, count do redis.call("ZADD", held, ARGV[6], string.sub(ids[k], 1, 64)) end
local gone = redis.call("ZRANGEBYSCORE", held, "-inf", now, "LIMIT", 0, 500)
for _, id in ipairs(gone) do
  remove(id)
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
      local key = string.sub(id, 1, 64)
      if not v or (r <= 1 and tonumber(u) + retain <= now) then
        remove(id)
      else
        if #id > 64 then redis.call("ZADD", scopes, "NX", 0, id) end
        if not redis.call("ZSCORE", held, key) then redis.call("ZADD", held, ARGV[6], key) end
      end
    end
  end
end

-- Each field's record as this batch leaves it: read once, changed in place.
local records, changed = {}, {}
local function record_of(id)
  local c = records[id]
  if c then return c end
  local version, rank, stored, why = read(redis.call("HGET", state, id))
  local present = version ~= nil
  if not present then version, rank, stored, why = 0, 0, "0", "" end
  -- A version far ahead of the counter is corrupt or forged: it keeps its state, not its place.
  if version > seq + 2147483648 then version = seq end
  if version > seq then seq = version end
  c = { version = version, rank = rank, stored = stored, why = why, present = present }
  -- The state as it stands now: an ended cooldown is ready.
  c.r, c.u, c.w = rank, stored, why
  if rank == 1 and tonumber(stored) <= now then c.r, c.u = 0, "0" end
  c.live, c.live_until = c.r, c.u
  records[id] = c
  return c
end
local function change(id, c, r, u, w)
  c.r, c.u, c.w = r, u, w
  if not changed[id] then
    changed[id] = true
    changed[#changed + 1] = id
  end
end

local in_batch, extra, listed = {}, {}, {}
for k = 1, count do in_batch[ids[k]] = true end
local function add_extra(id)
  if not in_batch[id] and not listed[id] then
    listed[id] = true
    extra[#extra + 1] = id
  end
end
-- A key-wide clear clears the key in every scope first, whoever marked it there: the batch's own
-- scoped transitions, made after it, then apply on top.
if not replay then
  for k = 1, count do
    if #ids[k] == 64 and modes[k] == "1" then
      for _, id in ipairs(scoped(ids[k])) do
        local c = record_of(id)
        if c.r ~= 0 then
          change(id, c, 0, ARGV[4], "")
          add_extra(id)
        end
      end
    end
  end
end
for k = 1, count do
  local id, mode, raise, target = ids[k], modes[k], raises[k], targets[k]
  local c = record_of(id)
  local r, u, w = c.r, c.u, c.w
  if not replay and not (mode == "2" and c.present and c.rank == 0) and not (mode == "3" and c.present) then
    if mode == "1" and (r ~= 0 or not c.present) then r, u, w = 0, ARGV[4], "" end
    if raise == 1 then
      if integer(target, 16) and tonumber(target) > now and (r == 0 or (r == 1 and tonumber(target) > tonumber(u))) then r, u, w = 1, target, reason(whys[k]) end
    elseif raise > r and raise <= 3 then
      r, u, w = raise, "0", reason(whys[k])
    end
  end
  if r ~= c.r or (r == 1 and u ~= c.u) or (mode == "1" and not c.present and not replay) then change(id, c, r, u, w) end
end
if ARGV[10] == "1" then
  for k = 1, count do
    local id = ids[k]
    if #id == 64 then
      for _, field in ipairs(scoped(id)) do
        if record_of(field).r ~= 0 then add_extra(field) end
      end
    end
  end
end

local entries = {}
if #changed > 0 then
  seq = seq + 1
  local version = string.format("%d", seq)
  redis.call("HSET", state, "seq", version)
  for _, id in ipairs(changed) do
    local c = records[id]
    local value = state_text(c.r, c.u, c.w)
    c.version, c.rank, c.stored, c.why = seq, c.r, c.u, c.w
    redis.call("HSET", state, id, version .. "|" .. value)
    if #id > 64 then redis.call("ZADD", scopes, 0, id) end
    entries[#entries + 1] = id .. "|" .. value
  end
  redis.call("PUBLISH", ARGV[1], ARGV[2] .. " " .. epoch .. " " .. version .. " " .. table.concat(entries, " "))
end
local reply = { epoch, string.format("%d", seq) }
local function result(id)
  local c = records[id]
  return string.format("%d|", c.version) .. state_text(c.rank, c.stored, c.why)
end
for k = 1, count do reply[#reply + 1] = result(ids[k]) end
for _, id in ipairs(extra) do
  reply[#reply + 1] = id
  reply[#reply + 1] = result(id)
end
return table.concat(reply, " ")
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
