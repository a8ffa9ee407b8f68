#!lua flags=no-writes
-- metrics_read: the fleet's request metrics and live gateways, one
-- consistent snapshot (read-only).  Written by metrics_flush.lua; read by
-- GET /api/metrics/alerts and GET /metrics (gateway/metrics.c).
-- KEYS: 1 metrics:total, 2 metrics:gateways, 3 the queue's waiting list.
--       metrics:m:<minute>, metrics:gw:<id> and job:<id> are computed under
--       KEYS[1]'s {tag}: same slot.
-- ARGV: 1 window minutes (the current minute and the ones before it),
--       2 alive ms (a gateway that flushed within it is live), 3 most
--       gateways listed
-- Reply: {now ms, totals {field, value, ...}, window {field, sum, ...}
--         (max_us: the largest), gateways {id, connections, active_jobs,
--         jobs JSON, ...}, created ms of the job at the front of waiting
--         (0: none or unknown)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local P = string.match(KEYS[1], '^(.-}:)')
local cur = math.floor(now / 60000)

local win, order = {}, {}
for m = cur - tonumber(ARGV[1]) + 1, cur do
  local h = redis.call('HGETALL', P .. 'metrics:m:' .. string.format('%d', m))
  for j = 1, #h, 2 do
    local f, v = h[j], tonumber(h[j + 1]) or 0
    if win[f] == nil then win[f] = 0; order[#order + 1] = f end
    if f == 'max_us' then
      if v > win[f] then win[f] = v end
    else
      win[f] = win[f] + v
    end
  end
end
local wflat = {}
for _, f in ipairs(order) do
  wflat[#wflat + 1] = f
  wflat[#wflat + 1] = string.format('%d', win[f])
end

local gws = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], string.format('%d', now - tonumber(ARGV[2])), '+inf',
                       'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local g = redis.call('HMGET', P .. 'metrics:gw:' .. id, 'connections', 'active_jobs', 'jobs')
  if g[1] then
    gws[#gws + 1] = id
    gws[#gws + 1] = g[1]
    gws[#gws + 1] = g[2] or '0'
    gws[#gws + 1] = g[3] or '[]'
  end
end

local oldest = 0
local front = redis.call('LINDEX', KEYS[3], -1)
if front then
  oldest = tonumber(redis.call('HGET', P .. 'job:' .. front, 'created_ms')) or 0
end

return { now, redis.call('HGETALL', KEYS[1]), wflat, gws, oldest }
