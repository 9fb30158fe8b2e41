-- Store new jobs of one queue (their unique keys were already taken in the cluster-wide index);
-- return the stored job for drafts whose id already exists. ARGV[4]: a JSON array with one
-- array per draft: [id, status, score, field, value, field, value...] (all strings; one
-- argument for the whole batch keeps the client's command packing cheap).
-- Returns one entry per draft: {id} when created, {id, fields} for an existing job.
local out = {}
local woke = false
for _, d in ipairs(cjson.decode(ARGV[4])) do
  local id, status, score = d[1], d[2], d[3]
  local jk = P .. id
  if redis.call('EXISTS', jk) == 1 then
    out[#out + 1] = {id, redis.call('HGETALL', jk)}
  else
    redis.call('HSET', jk, unpack(d, 4))
    if status == 'scheduled' then
      redis.call('ZADD', K_SCHEDULED, score, id)
    else
      redis.call('ZADD', K_PENDING, score, id)
      woke = true
    end
    redis.call('ZADD', K_ALL, 0, id)
    out[#out + 1] = {id}
  end
end
if woke then
  wake()
end
return out
