-- release: hand a claimed job back without spending its attempt (graceful
-- shutdown; or a fleet-wide gate says "not now": then delay ms > 0 parks it
-- in delayed, and it re-enters waiting at the front when due).
-- KEYS: 1 job:<id>, 2 waiting, 3 active, 4 delayed, 5 notify
-- ARGV: 1 id, 2 attempt token, 3 delay ms (0: waiting now), 4 live ttl s,
--       5 notify list cap
-- Reply: 'OK' | 'STALE' | 'NOT_FOUND'.  No event: the contract has no
-- event for "pending again"; the next `active` carries the same attempt number.
local id, token, delay = ARGV[1], ARGV[2], tonumber(ARGV[3])
local live_ttl, notify_max = tonumber(ARGV[4]), tonumber(ARGV[5])
local jk = KEYS[1]
if jk ~= jobkey(id) then
  return redis.error_reply('ERR release: KEYS[1] does not match ARGV[1]')
end
local r = redis.call('HMGET', jk, 'state', 'attempt_token', 'attempts')
if not r[1] then return 'NOT_FOUND' end
if r[1] ~= 'active' or token == '' or r[2] ~= token then return 'STALE' end
local attempts = tonumber(r[3]) or 0
if attempts > 0 then attempts = attempts - 1 end
redis.call('ZREM', KEYS[3], id)
if delay > 0 then
  redis.call('HSET', jk, 'state', 'delayed', 'attempt_token', '', 'attempts', int(attempts),
             'next_attempt_at', int(NOW + delay))
  redis.call('ZADD', KEYS[4], NOW + delay, id)
else
  redis.call('HSET', jk, 'state', 'waiting', 'attempt_token', '', 'attempts', int(attempts),
             'next_attempt_at', '')
  redis.call('RPUSH', KEYS[2], id)
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, notify_max - 1)
end
redis.call('EXPIRE', jk, live_ttl)
return 'OK'
