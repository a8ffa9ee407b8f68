#!lua flags=no-writes
-- stats: one consistent snapshot of the queue (read-only; runs on replicas).
-- KEYS: 1 waiting, 2 active, 3 delayed, 4 completed, 5 failed, 6 stats,
--       7 workers, 8 budget kill-switch
-- ARGV: 1 ttl s (completed/failed are counted over this window),
--       2 alive window ms (a worker seen within it counts as alive)
-- Reply: {waiting, active, delayed, completed, failed, completed_total,
--         failed_total, finished_total, last_finish_ms, workers_alive,
--         now_ms, kill_switch (0/1), workers_busy}
-- worker:<instance> hashes are computed keys under KEYS[7]'s {tag}: same slot.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = '(' .. string.format('%d', now - tonumber(ARGV[1]) * 1000)
local alive = string.format('%d', now - tonumber(ARGV[2]))
local P = string.match(KEYS[1], '^(.-}:)')
local busy = 0
local alive_ids = redis.call('ZRANGEBYSCORE', KEYS[7], alive, '+inf', 'LIMIT', 0, 1000)
for _, w in ipairs(alive_ids) do
  if (tonumber(redis.call('HGET', P .. 'worker:' .. w, 'in_flight')) or 0) > 0 then busy = busy + 1 end
end
local s = redis.call('HMGET', KEYS[6], 'completed_total', 'failed_total', 'finished_total',
                     'last_finish_ms')
return {
  redis.call('LLEN', KEYS[1]),
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCOUNT', KEYS[4], since, '+inf'),
  redis.call('ZCOUNT', KEYS[5], since, '+inf'),
  tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0, tonumber(s[4]) or 0,
  redis.call('ZCOUNT', KEYS[7], alive, '+inf'),
  now,
  redis.call('EXISTS', KEYS[8]),
  busy,
}
