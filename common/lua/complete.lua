-- complete: accept a job's result from the worker holding the current attempt.
-- KEYS: 1 job:<id>, 2 events:<id>, 3 active, 4 completed, 5 stats
-- ARGV: 1 id, 2 attempt token, 3 result JSON (one line, validated by the
--       caller), 4 input tokens, 5 output tokens, 6 ttl s, 7 events max,
--       8 finished keep
-- Reply: {'OK', event seq, finished_ms}, or 'STALE' (late or duplicate
--        completion: nothing changes), or 'NOT_FOUND'.
local id, token, result = ARGV[1], ARGV[2], ARGV[3]
local ttl, evmax, keep = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local jk = KEYS[1]
if jk ~= jobkey(id) or KEYS[2] ~= eventskey(id) then
  return redis.error_reply('ERR complete: KEYS do not match ARGV[1]')
end
local r = redis.call('HMGET', jk, 'state', 'attempt_token', 'user', 'started_ms')
if not r[1] then return 'NOT_FOUND' end
if r[1] ~= 'active' or token == '' or r[2] ~= token then return 'STALE' end

local started = tonumber(r[4]) or NOW
redis.call('HSET', jk, 'state', 'completed', 'result', result, 'finished_ms', int(NOW),
           'progress', '100', 'attempt_token', '', 'error', '', 'error_code', '',
           'usage_input_tokens', ARGV[4], 'usage_output_tokens', ARGV[5])
redis.call('ZREM', KEYS[3], id)
redis.call('ZADD', KEYS[4], NOW, id)
trim_finished(KEYS[4], ttl, keep)
redis.call('HINCRBY', KEYS[5], 'completed_total', 1)
redis.call('HINCRBY', KEYS[5], 'finished_total', 1)
redis.call('HSET', KEYS[5], 'last_finish_ms', int(NOW))
idem_touch(id, ttl, false)
redis.call('EXPIRE', jk, ttl)
local seq = emit(id, r[3], 'completed',
                 '{"jobId":' .. jstr(id) .. ',"result":' .. result .. ',"duration":' ..
                 int(NOW - started) .. ',"timestamp":"' .. iso(NOW) .. '"}', evmax, ttl)
return {'OK', seq, NOW}
