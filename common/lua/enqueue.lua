-- enqueue: idempotent check-and-enqueue in one atomic step.
-- KEYS: 1 waiting, 2 delayed, 3 notify, 4 budget kill-switch, 5 job:<new id>,
--       6 idem:<request hash>, 7 (optional) idemkey:<hash of user + Idempotency-Key>
-- ARGV: 1 new id, 2 user, 3 type, 4 params JSON, 5 ttl s, 6 live ttl s,
--       7 max waiting (waiting + delayed), 8 notify list cap
-- Reply: {'EXISTS', id, state, created_ms, finished_ms|'', result|''}
--        {'NEW', id, 'waiting', created_ms}  | {'QUEUE_FULL'} | {'KILL_SWITCH'}
local id, user, jtype, params = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, live_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_waiting, notify_max = tonumber(ARGV[7]), tonumber(ARGV[8])
local hkey, ukey = KEYS[6], KEYS[7]
if KEYS[5] ~= jobkey(id) then
  return redis.error_reply('ERR enqueue: KEYS[5] is not the record of ARGV[1]')
end

-- A mapping counts only if its job record still exists, belongs to this user
-- and did not fail for good (a failed job is retried by a new submission).
local function live(k)
  local jid = redis.call('GET', k)
  if not jid then return nil end
  local r = redis.call('HMGET', jobkey(jid), 'state', 'user', 'created_ms', 'finished_ms', 'result')
  if not r[1] or r[2] ~= user or r[1] == 'failed' then return nil end
  return jid, r
end

local found, rec
if ukey then found, rec = live(ukey) end
if not found then found, rec = live(hkey) end
if found then
  -- The client's Idempotency-Key now names the job it got (if it named none).
  if ukey and redis.call('GET', ukey) ~= found then
    redis.call('SET', ukey, found, 'EX', ttl)
  end
  return {'EXISTS', found, rec[1], rec[3] or '', rec[4] or '', rec[5] or ''}
end

if redis.call('EXISTS', KEYS[4]) == 1 then return {'KILL_SWITCH'} end
if redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= max_waiting then
  return {'QUEUE_FULL'}
end

local jk = KEYS[5]
redis.call('HSET', jk, 'id', id, 'type', jtype, 'user', user, 'params', params,
           'state', 'waiting', 'attempts', '0', 'attempt_token', '', 'created_ms', int(NOW),
           'progress', '0', 'event_seq', '0', 'idem_hash_key', hkey, 'idem_user_key', ukey or '')
redis.call('EXPIRE', jk, live_ttl)
redis.call('LPUSH', KEYS[1], id)
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, notify_max - 1)
redis.call('SET', hkey, id, 'EX', ttl)
if ukey then redis.call('SET', ukey, id, 'EX', ttl) end
return {'NEW', id, 'waiting', int(NOW)}
