-- enqueue: admission, idempotent check and enqueue in one atomic step (one
-- round trip per submission).  gcra() comes from gcra.lua (sent between
-- common.lua and this body).
-- KEYS: 1 waiting, 2 delayed, 3 notify, 4 budget kill-switch, 5 job:<new id>,
--       6 idem:<request hash>, 7 (optional) idemkey:<hash of user + Idempotency-Key>
-- ARGV: 1 new id, 2 user, 3 type, 4 params JSON, 5 ttl s, 6 live ttl s,
--       7 max waiting (waiting + delayed), 8 notify list cap,
--       9 client address ('' : no per-address limit), 10 its limit,
--       11 user's rate-limit id ('' : no per-user limit), 12 its limit,
--       13 limits' window ms
-- The buckets are P rl:ip:<address> and P rl:ai:<id>, the keys of
-- ratelimit.lua (gates_rate_take), so other endpoints share them.
-- Order: per-address take; idempotency lookup (a hit answers the original
-- job and only looks at the per-user bucket: a repeat costs no AI quota);
-- per-user take; kill-switch; queue depth; enqueue.
-- Reply: {verdict, rates, ...} where rates = {ip remaining, ip reset ms,
--   ip retry ms, user remaining, user reset ms, user retry ms} (-1 -1 -1 for
--   a bucket not consulted) and verdict and the rest are one of
--        'EXISTS', id, state, created_ms, finished_ms|'', result|''
--        'NEW', id, 'waiting', created_ms  | 'QUEUE_FULL' | 'KILL_SWITCH'
--        'RATE_IP' | 'RATE_USER'
local id, user, jtype, params = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, live_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_waiting, notify_max = tonumber(ARGV[7]), tonumber(ARGV[8])
local ip, ip_limit = ARGV[9] or '', tonumber(ARGV[10])
local rl_user, user_limit = ARGV[11] or '', tonumber(ARGV[12])
local window_ms = tonumber(ARGV[13])
local hkey, ukey = KEYS[6], KEYS[7]
if KEYS[5] ~= jobkey(id) then
  return redis.error_reply('ERR enqueue: KEYS[5] is not the record of ARGV[1]')
end

local now_us = tonumber(T[1]) * 1000000 + tonumber(T[2])
local rates = {-1, -1, -1, -1, -1, -1}
-- bucket b (0 address, 3 user): cost 1 take, 0 look; true if allowed
local function bucket(b, key, limit, cost)
  local ok, rem, reset, retry = gcra(key, limit, window_ms, cost, now_us)
  rates[b + 1], rates[b + 2], rates[b + 3] = rem, reset, retry
  return ok == 1
end

if ip ~= '' and not bucket(0, P .. 'rl:ip:' .. ip, ip_limit, 1) then
  return {'RATE_IP', rates}
end

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
  if rl_user ~= '' then bucket(3, P .. 'rl:ai:' .. rl_user, user_limit, 0) end
  return {'EXISTS', rates, found, rec[1], rec[3] or '', rec[4] or '', rec[5] or ''}
end

if rl_user ~= '' and not bucket(3, P .. 'rl:ai:' .. rl_user, user_limit, 1) then
  return {'RATE_USER', rates}
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {'KILL_SWITCH', rates} end
if redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= max_waiting then
  return {'QUEUE_FULL', rates}
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
return {'NEW', rates, id, 'waiting', int(NOW)}
