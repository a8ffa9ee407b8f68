#!lua
-- due: how long until a claim could hand out or take back work (queue_wait).
-- KEYS: 1 waiting, 2 delayed, 3 active, 4 notify
-- Reply: 0 (work now: jobs wait, or a delayed job / expired lease is due),
--        ms until the earliest delayed job or lease falls due, or -1 (none).
-- When there is no work now, the wake-up tokens in notify are stale (they
-- announced jobs that are gone): they are dropped here, atomically with the
-- check, so an idle worker does not spin through them; a job enqueued after
-- this script pushes a fresh token, so no wake-up is lost.
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
if best ~= 0 then redis.call('DEL', KEYS[4]) end
return best
