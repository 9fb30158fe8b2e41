-- Names in keys (prepended to the scripts that build keys from names; keys.py has the same
-- rule in Python): a name that could reach another key is escaped as '~' .. hex of its bytes.
local function escaped(name)
  return '~' .. (string.gsub(name, '.', function(c)
    return string.format('%02x', string.byte(c))
  end))
end

-- keys.queue_tag: a queue name inside its hash tag {q:...}.
local function queue_tag(queue)
  if string.find(queue, '[{}]') or string.sub(queue, 1, 1) == '~' then
    return escaped(queue)
  end
  return queue
end

-- keys.schedule_tag: a schedule name inside its key sched:...
local function schedule_tag(name)
  if name == 'due' or string.sub(name, 1, 6) == 'owner:' or string.sub(name, 1, 1) == '~' then
    return escaped(name)
  end
  return name
end

-- The hash of schedule `name` under the cluster-wide key base `base` (P{g}:).
local function sched_key(base, name)
  return base .. 'sched:' .. schedule_tag(name)
end

-- The set of schedule names of `owner` (owners are verbatim: nothing else is under sched:owner:).
local function owner_key(base, owner)
  return base .. 'sched:owner:' .. owner
end

-- What every key of `queue` starts with, under the key prefix `prefix`.
local function queue_base(prefix, queue)
  return prefix .. '{q:' .. queue_tag(queue) .. '}:'
end

-- Whether a stored schedule document is a code schedule's (an unreadable one is not, rather
-- than failing the script halfway through its writes).
local function is_code(doc)
  local ok, decoded = pcall(cjson.decode, doc)
  return ok and type(decoded) == 'table' and decoded['source'] == 'code'
end
