-- Store a workflow in one script over its home queue's keys (QUEUE): header, steps and edges.
-- ARGV[4] now (µs), [5] workflow id, [6] name, [7] a JSON array with one array per step:
-- [id, queue, status, score, field, value, ...], [8] a JSON array of [parent, child, policy];
-- on a single Redis server also [9] the directory hash, [10] the queue set, [11] the workflow
-- directory hash and [12] the workflow index (on a Redis Cluster the caller wrote those in the
-- `{g}` slot first, and every step is in QUEUE). Returns 'created', or 'exists' when the
-- workflow was stored before (then nothing is written).
local R = rules()
local now, wf = ARGV[4], ARGV[5]
local W = R.wf_base(QUEUE, wf)
local header = string.sub(W, 1, -2)
if redis.call('EXISTS', header) == 1 then
  return 'exists'
end
local global = ARGV[9] ~= nil and ARGV[9] ~= ''
redis.call('HSET', header, 'n', ARGV[6], 'c', now)
local queues = {}
for _, d in ipairs(cjson.decode(ARGV[7])) do
  local id, queue, status, score = d[1], d[2], d[3], d[4]
  local b = R.qbase(queue)
  local jk = b .. 'job:' .. id
  redis.call('HSET', W .. 'steps', id, queue)
  redis.call('RPUSH', W .. 'order', id)
  if global then
    redis.call('HSET', ARGV[9], id, queue)
    queues[queue] = true
  end
  if redis.call('EXISTS', jk) == 0 then
    redis.call('HSET', jk, unpack(d, 5))
    if status == 'blocked' then
      redis.call('ZADD', b .. 'blocked', 0, id)
    elseif status == 'scheduled' then
      redis.call('ZADD', b .. 'scheduled', score, id)
    else
      redis.call('ZADD', b .. 'pending', score, id)
      R.woken[queue] = true
    end
    redis.call('ZADD', b .. 'all', 0, id)
  end
end
for _, e in ipairs(cjson.decode(ARGV[8])) do
  redis.call('HSET', W .. 'edges', e[1] .. ' ' .. e[2], e[3] .. ':open')
  redis.call('SADD', W .. 'kids:' .. e[1], e[2])
  redis.call('SADD', W .. 'pars:' .. e[2], e[1])
end
if global then
  for queue in pairs(queues) do
    redis.call('SADD', ARGV[10], queue)
  end
  redis.call('HSET', ARGV[11], wf, QUEUE)
  redis.call('ZADD', ARGV[12], 0, wf)
end
wake_steps()
return 'created'
