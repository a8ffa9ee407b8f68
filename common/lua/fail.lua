-- fail: the worker holding the current attempt reports an error.
-- KEYS: 1 job:<id>, 2 events:<id>, 3 active, 4 delayed, 5 failed, 6 stats
-- ARGV: 1 id, 2 attempt token, 3 error (for people), 4 error code,
--       5 retryable '1'/'0', 6 delay ms before the retry (backoff or the
--       provider's Retry-After, chosen by the caller), 7 spend attempt '1'/'0'
--       ('0': this attempt does not count, e.g. a provider 429: the claim's
--       increment is undone), 8 max attempts, 9 deadline ms, 10 ttl s,
--       11 live ttl s, 12 events max, 13 finished keep
-- Reply: {'RETRY', next_attempt_ms, attempts} (now delayed; event `retrying`)
--        {'FAILED', finished_ms, attempts} (final; the job's one `failed` event)
--        'STALE' (not the current attempt: nothing changes) | 'NOT_FOUND'
-- A retry that could only start after the job's deadline fails now instead.
local id, token, err, code = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retryable, delay, spend = ARGV[5] == '1', tonumber(ARGV[6]), ARGV[7] == '1'
local max_attempts, deadline = tonumber(ARGV[8]), tonumber(ARGV[9])
local ttl, live_ttl, evmax, keep = tonumber(ARGV[10]), tonumber(ARGV[11]),
                                   tonumber(ARGV[12]), tonumber(ARGV[13])
local jk = KEYS[1]
if jk ~= jobkey(id) or KEYS[2] ~= eventskey(id) then
  return redis.error_reply('ERR fail: KEYS do not match ARGV[1]')
end
local r = redis.call('HMGET', jk, 'state', 'attempt_token', 'user', 'attempts', 'created_ms')
if not r[1] then return 'NOT_FOUND' end
if r[1] ~= 'active' or token == '' or r[2] ~= token then return 'STALE' end

local attempts = tonumber(r[4]) or 0
if not spend and attempts > 0 then
  attempts = attempts - 1
  redis.call('HSET', jk, 'attempts', int(attempts))
end
local next_at = NOW + delay
local in_time = next_at - (tonumber(r[5]) or NOW) <= deadline
if retryable and in_time and (not spend or attempts < max_attempts) then
  redis.call('HSET', jk, 'state', 'delayed', 'attempt_token', '', 'error', err,
             'error_code', code, 'next_attempt_at', int(next_at))
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[4], next_at, id)
  redis.call('EXPIRE', jk, live_ttl)
  emit(id, r[3], 'retrying',
       '{"jobId":' .. jstr(id) .. ',"error":' .. jstr(err) .. ',"attemptsMade":' ..
       int(attempts) .. ',"nextAttemptAt":"' .. iso(next_at) .. '","timestamp":"' ..
       iso(NOW) .. '"}', evmax, live_ttl)
  return {'RETRY', next_at, attempts}
end
fail_final(id, r[3], err, code,
           {ttl = ttl, evmax = evmax, keep = keep, worker = true, active = KEYS[3],
            delayed = KEYS[4], failed = KEYS[5], stats = KEYS[6]})
return {'FAILED', NOW, attempts}
