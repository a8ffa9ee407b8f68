-- metrics_flush: one gateway adds its request counters to the fleet's
-- metrics and refreshes its live record (SSE figures), in one step.  Called
-- once per METRICS_FLUSH_MS by each gateway's flusher thread (gateway/metrics.c;
-- layout and meaning: docs/operations.md, "Metrics and alerts").
-- KEYS: 1 metrics:total (HASH, cumulative counters), 2 metrics:gateways (ZSET
--       instance -> last flush ms).  metrics:m:<minute>, metrics:gw:<id> and
--       metrics:seq:<id> are computed under KEYS[1]'s {tag}: same slot.
-- ARGV: 1 instance id, 2 epoch (random per process), 3 seq (> 0: this batch's
--       number; 0: no counters to add), 4 alive ms (the live record's TTL; 0:
--       the gateway is leaving, delete it), 5 minute-bucket TTL s, 6 totals
--       TTL s, 7 seq record TTL s, 8 SSE connections, 9 SSE jobs with
--       subscribers, 10 that list as JSON, 11 F (number of fields), 12..11+F
--       field names, then slots of F + 2 values: minute (unix ms / 60000, or
--       -1: add to the totals only), F counts, largest latency in us.
-- Reply: {1 added | 0 duplicate (this epoch/seq was added before: nothing
--         changed) | 2 nothing to add, Redis time ms}
-- A batch that was added but whose reply was lost is sent again with the same
-- epoch and seq; the seq record makes the retry a no-op, so counts are never
-- doubled (nor lost: the gateway keeps the batch until it gets an answer).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local P = string.match(KEYS[1], '^(.-}:)')
local id, epoch, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local alive_ms, bucket_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local total_ttl, seq_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])

local gk = P .. 'metrics:gw:' .. id
if alive_ms > 0 then
  redis.call('HSET', gk, 'seen_ms', now, 'connections', ARGV[8], 'active_jobs', ARGV[9], 'jobs', ARGV[10])
  redis.call('PEXPIRE', gk, alive_ms)
  redis.call('ZADD', KEYS[2], now, id)
else
  redis.call('DEL', gk)
  redis.call('ZREM', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%d', now - 3600000))
redis.call('EXPIRE', KEYS[2], 3600)

if seq <= 0 then return { 2, now } end
local sk = P .. 'metrics:seq:' .. id
local last = redis.call('HMGET', sk, 'epoch', 'seq')
if last[1] == epoch and (tonumber(last[2]) or 0) >= seq then return { 0, now } end
redis.call('HSET', sk, 'epoch', epoch, 'seq', ARGV[3])
redis.call('EXPIRE', sk, seq_ttl)

local nf = tonumber(ARGV[11])
local cur = math.floor(now / 60000)
local oldest = cur - math.floor(bucket_ttl / 60) + 1
local i = 12 + nf
while i + nf + 1 <= #ARGV do
  local minute = tonumber(ARGV[i])
  local bk = nil
  if minute >= oldest then
    if minute > cur then minute = cur end     -- a clock ahead of Redis: now
    bk = P .. 'metrics:m:' .. string.format('%d', minute)
  end
  for f = 1, nf do
    local v = ARGV[i + f]
    if v ~= '0' then
      redis.call('HINCRBY', KEYS[1], ARGV[11 + f], v)
      if bk then redis.call('HINCRBY', bk, ARGV[11 + f], v) end
    end
  end
  if bk then
    local mx = tonumber(ARGV[i + nf + 1])
    if mx > (tonumber(redis.call('HGET', bk, 'max_us')) or 0) then
      redis.call('HSET', bk, 'max_us', ARGV[i + nf + 1])
    end
    redis.call('EXPIRE', bk, bucket_ttl)
  end
  i = i + nf + 2
end
redis.call('EXPIRE', KEYS[1], total_ttl)
return { 1, now }
