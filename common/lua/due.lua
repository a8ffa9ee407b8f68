#!lua flags=no-writes
-- due: how long until a claim could hand out or take back work (queue_wait).
-- KEYS: 1 waiting, 2 delayed, 3 active
-- Reply: 0 (work now: jobs wait, or a delayed job / expired lease is due),
--        ms until the earliest delayed job or lease falls due, or -1 (none).
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local best = -1
for i = 2, 3 do
  local f = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if f[2] then
    local d = tonumber(f[2]) - now
    if d < 0 then d = 0 end
    if best < 0 or d < best then best = d end
  end
end
return best
