-- Release a leadership lease if ARGV[1] holds it. KEYS[1] the lease hash. Returns 1 if released.
if redis.call('HGET', KEYS[1], 'h') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
