#!lua
-- ratelimit: one request against a client's limit (per user AI submissions,
-- per address API requests), shared by every gateway.  The bucket is gcra()
-- (gcra.lua, sent in front of this body after the shebang line).
-- KEYS: 1 the client's key
-- ARGV: 1 limit, 2 window ms, 3 cost (1 take; 0 only look)
-- Reply: {allowed 0|1, remaining, reset ms (until the bucket is full again),
--         retry ms (until one more request would be allowed; 0 if allowed)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return { gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), now) }
