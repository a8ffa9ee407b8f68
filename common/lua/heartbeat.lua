-- heartbeat: a worker says it is alive, with its counters.
-- KEYS: 1 workers (ZSET instance -> last seen ms), 2 worker:<instance> (HASH)
-- ARGV: 1 instance, 2 ttl ms of the worker's hash (0: the worker is leaving:
--       remove it now), 3 forget ms (entries not seen for this long are
--       trimmed from the ZSET), 4.. field, value pairs for the hash
-- Reply: the Redis time in ms.
local instance, ttl, forget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if KEYS[2] ~= P .. 'worker:' .. instance then
  return redis.error_reply('ERR heartbeat: KEYS[2] does not match ARGV[1]')
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. int(NOW - forget))
if ttl <= 0 then
  redis.call('ZREM', KEYS[1], instance)
  redis.call('DEL', KEYS[2])
  return NOW
end
redis.call('ZADD', KEYS[1], NOW, instance)
redis.call('PEXPIRE', KEYS[1], forget)
redis.call('DEL', KEYS[2])
local n = #ARGV
if n >= 5 then
  redis.call('HSET', KEYS[2], 'last_seen_ms', int(NOW), unpack(ARGV, 4, n))
else
  redis.call('HSET', KEYS[2], 'last_seen_ms', int(NOW))
end
redis.call('PEXPIRE', KEYS[2], ttl)
return NOW
