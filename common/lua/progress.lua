-- progress: record a running job's progress and emit `progress`.
-- KEYS: 1 job:<id>, 2 events:<id>
-- ARGV: 1 id, 2 attempt token, 3 percent 0..100, 4 live ttl s, 5 events max
-- Reply: event seq (integer), or 'STALE' (token not current / not active),
--        or 'NOT_FOUND' (no record).
local id, token, pct = ARGV[1], ARGV[2], tonumber(ARGV[3])
local live_ttl, evmax = tonumber(ARGV[4]), tonumber(ARGV[5])
if KEYS[1] ~= jobkey(id) or KEYS[2] ~= eventskey(id) then
  return redis.error_reply('ERR progress: KEYS do not match ARGV[1]')
end
local r = redis.call('HMGET', KEYS[1], 'state', 'attempt_token', 'user')
if not r[1] then return 'NOT_FOUND' end
if r[1] ~= 'active' or token == '' or r[2] ~= token then return 'STALE' end
redis.call('HSET', KEYS[1], 'progress', int(pct))
redis.call('EXPIRE', KEYS[1], live_ttl)
return emit(id, r[3], 'progress',
            '{"jobId":' .. jstr(id) .. ',"progress":' .. int(pct) .. ',"timestamp":"' ..
            iso(NOW) .. '"}', evmax, live_ttl)
