-- Shared prelude of every per-queue job script (prepended when the scripts are loaded).
-- KEYS are the queue's keys in keys.QUEUE_KEY_NAMES order; ARGV[1] is the job-hash key
-- prefix, ARGV[2] the wake-up channel ('' on a cluster: see `wake`), ARGV[3] the queue name;
-- script arguments follow.
local K_PENDING, K_SCHEDULED, K_RUNNING, K_ALL = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_DONE = {completed = KEYS[5], failed = KEYS[6], cancelled = KEYS[7]}
local K_SETTINGS, K_RATE, K_BLOCKED = KEYS[8], KEYS[9], KEYS[10]
local P, CHANNEL, QUEUE = ARGV[1], ARGV[2], ARGV[3]

local EPOCH_2000_MS = 946684800000
local SPAN = 4398046511104 -- 2^42 ms, about 139 years

-- Integers as exact decimal text (string concatenation of Lua numbers loses digits).
local function I(n)
  return string.format('%.0f', n)
end

-- The time to act at (µs): the caller's, or when it passes '' this server's clock, so that
-- leases written and judged by many machines are compared on one clock. (Redis replicates a
-- script's effects, not the script, so reading TIME before writing is safe.)
local function clock(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Pending score: priority desc, then run_at; must match codec.pending_score.
local function pscore(pr, ra_us)
  pr = math.max(-1023, math.min(1023, tonumber(pr) or 0))
  local ms = math.floor(tonumber(ra_us) / 1000) - EPOCH_2000_MS
  ms = math.max(0, math.min(SPAN - 1, ms))
  return (1023 - pr) * SPAN + ms
end

local function make_pending(id, jk)
  local f = redis.call('HMGET', jk, 'pr', 'ra')
  redis.call('HSET', jk, 's', 'pending')
  redis.call('ZADD', K_PENDING, pscore(f[1], f[2]), id)
end

-- The hash's fields (s, lt, u, a, ma, wf) if `token` still owns the running job, else nil.
local function owned(jk, token)
  local f = redis.call('HMGET', jk, 's', 'lt', 'u', 'a', 'ma', 'wf')
  if f[1] ~= 'running' or f[2] ~= token then
    return nil
  end
  return f
end

local function append_error(jk, err)
  local cur = redis.call('HGET', jk, 'e')
  if not cur or cur == '' or cur == '[]' then
    redis.call('HSET', jk, 'e', '[' .. err .. ']')
  else
    redis.call('HSET', jk, 'e', string.sub(cur, 1, -2) .. ',' .. err .. ']')
  end
end

-- Leave running: drop the lease (and the worker id when the job goes back to pending).
local function leave_running(id, jk, clear_worker)
  redis.call('ZREM', K_RUNNING, id)
  redis.call('HDEL', jk, 'lt', 'le', 'cr')
  if clear_worker then
    redis.call('HDEL', jk, 'w')
  end
end

-- Enter a finished status, indexed by finish time. (A unique key held by the job is released
-- lazily: the cluster-wide index lives in another slot and treats finished holders as free.)
local function finish(id, jk, status, now)
  redis.call('HSET', jk, 's', status, 'f', now)
  redis.call('ZADD', K_DONE[status], now, id)
end

-- CHANNEL '' (a Redis Cluster): the queue's own shard channel `P{q:Q}:wake` (P ends in `job:`).
local function wake()
  if CHANNEL == '' then
    redis.call('SPUBLISH', string.sub(P, 1, -5) .. 'wake', QUEUE)
  else
    redis.call('PUBLISH', CHANNEL, QUEUE)
  end
end

-- Move up to `cap` due scheduled jobs to pending; returns how many moved.
local function promote(now, cap)
  local due = redis.call('ZRANGEBYSCORE', K_SCHEDULED, '-inf', now, 'LIMIT', 0, cap)
  for _, id in ipairs(due) do
    redis.call('ZREM', K_SCHEDULED, id)
    make_pending(id, P .. id)
  end
  return #due
end
