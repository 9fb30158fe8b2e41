-- Workflow rules (core.workflow), prepended after _lib.lua to the scripts that finish, cancel
-- or retry jobs and to the workflow scripts. A step's hash has wf (workflow
-- id), wq (home queue: the workflow's keys live in its hash slot), sn (step name), wo / wx
-- (how many edges into it are open / failed). Edges: hash `W edges` "<parent> <child>" ->
-- "<policy>:<state>", sets `W kids:<id>` and `W pars:<id>`; `W steps` maps id -> queue and
-- the list `W order` holds the ids in step order.
-- A child in another queue is reached by its computed keys: on one Redis server a script may
-- touch any key, and on a Redis Cluster every step of a workflow is in one queue (one slot).
-- The functions are built by `rules()` on first use, so a script that meets no workflow step
-- pays for one closure, not for all of them (scripts.py puts _names.lua where marked).

local G

local function rules()
  if G then
    return G
  end
-- (_names.lua)

-- The key prefix, from the job-hash prefix `<prefix>{q:<tag>}:job:` (a tag holds no brace).
local PREFIX

local function qbase(queue)
  if not PREFIX then
    PREFIX = string.match(P, '^(.*){q:[^{]*}:job:$')
  end
  return queue_base(PREFIX, queue)
end

-- What the keys of workflow `wf` (home queue `home`) start with; the header is `W` minus ':'.
local function wf_base(home, wf)
  return qbase(home) .. 'wf:' .. wf .. ':'
end

local woken_queues = {}

-- Publish one wake-up per queue where steps became pending (call once, at the end).
local function wake_steps()
  for queue in pairs(woken_queues) do
    if CHANNEL == '' then
      redis.call('SPUBLISH', qbase(queue) .. 'wake', queue)
    else
      redis.call('PUBLISH', CHANNEL, queue)
    end
  end
end

local function edge_of(W, parent, child)
  local e = redis.call('HGET', W .. 'edges', parent .. ' ' .. child)
  local sep = string.find(e, ':', 1, true)
  return string.sub(e, 1, sep - 1), string.sub(e, sep + 1)
end

local function step_pending(b, queue, id, jk, now)
  redis.call('ZREM', b .. 'blocked', id)
  redis.call('HSET', jk, 's', 'pending', 'ra', now)
  redis.call('ZADD', b .. 'pending', pscore(redis.call('HGET', jk, 'pr'), now), id)
  woken_queues[queue] = true
end

-- Workflow step `id` of `queue` has just finished (its status is stored): settle its open
-- edges by their policy; a blocked child with a failed edge is cancelled (and carries the
-- rule on down the graph), one with no open edge left becomes pending.
local function step_finished(id, queue, now)
  local h = redis.call('HMGET', qbase(queue) .. 'job:' .. id, 'wf', 'wq', 's', 'sn')
  local W = wf_base(h[2], h[1])
  local work = {{id, h[3], h[4]}}
  while #work > 0 do
    local item = table.remove(work)
    local parent, pstatus, pstep = item[1], item[2], item[3]
    for _, child in ipairs(redis.call('SMEMBERS', W .. 'kids:' .. parent)) do
      local policy, state = edge_of(W, parent, child)
      if state == 'open' then
        local new = 'done'
        if pstatus ~= 'completed' and policy == 'fail' then
          new = 'failed'
        end
        redis.call('HSET', W .. 'edges', parent .. ' ' .. child, policy .. ':' .. new)
        local cq = redis.call('HGET', W .. 'steps', child)
        local cb = qbase(cq)
        local cjk = cb .. 'job:' .. child
        if redis.call('EXISTS', cjk) == 1 then
          local wo = redis.call('HINCRBY', cjk, 'wo', -1)
          local c = redis.call('HMGET', cjk, 's', 'sn', 'wx')
          local wx = tonumber(c[3]) or 0
          if new == 'failed' then
            wx = redis.call('HINCRBY', cjk, 'wx', 1)
          end
          if c[1] == 'blocked' then
            if wx > 0 then
              local reason = "parent step '" .. (pstep or '') .. "' " .. pstatus
              redis.call('ZREM', cb .. 'blocked', child)
              redis.call('HSET', cjk, 's', 'cancelled', 'f', now, 'r', cjson.encode({cancelled = reason}))
              redis.call('ZADD', cb .. 'done:cancelled', now, child)
              work[#work + 1] = {child, 'cancelled', c[2]}
            elseif wo <= 0 then
              step_pending(cb, cq, child, cjk, now)
            end
          end
        end
      end
    end
  end
end

-- A manual retry's reset (core.job.retried_job) of job `id` (hash `jk`, queue base `b`),
-- leaving the status to the caller.
local function reset_job(b, id, jk, status, now)
  redis.call('ZREM', b .. 'done:' .. status, id)
  redis.call('HSET', jk, 'a', 0, 'ra', now)
  redis.call('HDEL', jk, 'f', 'r', 'pg', 'cr', 'w', 'lt', 'le', 'rs')
end

local function make_blocked(b, id, jk)
  redis.call('HSET', jk, 's', 'blocked')
  redis.call('ZADD', b .. 'blocked', 0, id)
end

-- Manual retry of workflow step `id` of `queue` (failed or cancelled): refused while an edge
-- into it is failed (returns that parent's id); back to blocked while one is open, else
-- pending; then the children it cancelled are revived (blocked), and theirs, down the graph.
local function step_retry(id, queue, status, now)
  local b = qbase(queue)
  local jk = b .. 'job:' .. id
  local h = redis.call('HMGET', jk, 'wf', 'wq', 'wo', 'wx')
  local W = wf_base(h[2], h[1])
  if (tonumber(h[4]) or 0) > 0 then
    local parents = redis.call('SMEMBERS', W .. 'pars:' .. id)
    table.sort(parents)
    for _, parent in ipairs(parents) do
      local _, state = edge_of(W, parent, id)
      if state == 'failed' then
        return parent
      end
    end
  end
  reset_job(b, id, jk, status, now)
  if (tonumber(h[3]) or 0) > 0 then
    make_blocked(b, id, jk)
  else
    step_pending(b, queue, id, jk, now)
  end
  local work = {id}
  while #work > 0 do
    local parent = table.remove(work)
    for _, child in ipairs(redis.call('SMEMBERS', W .. 'kids:' .. parent)) do
      local policy, state = edge_of(W, parent, child)
      local cq = redis.call('HGET', W .. 'steps', child)
      local cb = qbase(cq)
      local cjk = cb .. 'job:' .. child
      local cs = redis.call('HGET', cjk, 's')
      if cs then
        local wx = 1
        if state == 'failed' or (state == 'done' and cs == 'blocked') then
          redis.call('HSET', W .. 'edges', parent .. ' ' .. child, policy .. ':open')
          redis.call('HINCRBY', cjk, 'wo', 1)
          if state == 'failed' then
            wx = redis.call('HINCRBY', cjk, 'wx', -1)
          end
        end
        if state == 'failed' and cs == 'cancelled' and wx <= 0 then
          reset_job(cb, child, cjk, 'cancelled', now)
          make_blocked(cb, child, cjk)
          work[#work + 1] = child
        end
      end
    end
  end
  return nil
end

-- The workflow as stored: {header fields, {{id, queue, fields}, ...} in step order (a step
-- deleted since is left out), edge fields}; false when there is no such workflow.
local function wf_snapshot(W)
  local header = redis.call('HGETALL', string.sub(W, 1, -2))
  if #header == 0 then
    return false
  end
  local queues = {}
  local flat = redis.call('HGETALL', W .. 'steps')
  for i = 1, #flat, 2 do
    queues[flat[i]] = flat[i + 1]
  end
  local steps = {}
  for _, id in ipairs(redis.call('LRANGE', W .. 'order', 0, -1)) do
    local fields = redis.call('HGETALL', qbase(queues[id]) .. 'job:' .. id)
    if #fields > 0 then
      steps[#steps + 1] = {id, queues[id], fields}
    end
  end
  return {header, steps, redis.call('HGETALL', W .. 'edges')}
end

G = {
  qbase = qbase,
  wf_base = wf_base,
  woken = woken_queues,
  wake_steps = wake_steps,
  step_finished = step_finished,
  step_retry = step_retry,
  wf_snapshot = wf_snapshot,
}
return G
end

-- A finished job's status is stored: carry out the workflow rules if it is a step (`wf`).
local function after_finish(id, queue, wf, now)
  if wf then
    rules().step_finished(id, queue, now)
  end
end

-- Publish the wake-ups of queues where steps became pending (call once, at the end).
local function wake_steps()
  if G then
    G.wake_steps()
  end
end
