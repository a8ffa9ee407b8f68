#!lua
-- ratelimit: one request against a client's limit (per user AI submissions,
-- per address API requests), shared by every gateway.
-- A GCRA token bucket: `limit` requests at once, refilled at limit per
-- window (one every window/limit); state is one number, the theoretical
-- arrival time (us, Redis time), kept exactly as long as it matters.
-- KEYS: 1 the client's key
-- ARGV: 1 limit, 2 window ms, 3 cost (1 take; 0 only look)
-- Reply: {allowed 0|1, remaining, reset ms (until the bucket is full again),
--         retry ms (until one more request would be allowed; 0 if allowed)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]) * 1000, tonumber(ARGV[3])
local T = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local function remaining(x)
  local r = math.floor((now + window - x) / T)
  if r < 0 then r = 0 elseif r > limit then r = limit end
  return r
end
local function ms(us) return math.ceil(us / 1000) end
if cost == 0 then
  local retry = tat + T - window - now
  if retry < 0 then retry = 0 end
  return { 1, remaining(tat), ms(tat - now), ms(retry) }
end
local new_tat = tat + T * cost
local allow_at = new_tat - window
if now < allow_at then
  return { 0, remaining(tat), ms(tat - now), ms(allow_at - now) }
end
-- stored exactly (%.17g round-trips a double): rounding up here would drift
-- by a microsecond per request and refuse the last one of a burst
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ms(new_tat - now) + 1)
return { 1, remaining(new_tat), ms(new_tat - now), 0 }
