#!lua flags=no-writes
-- throttle_status: a provider's throttle as operators see it (read-only).
-- KEYS: 1 thr:<p>, 2 thr:<p>:leases, 3 thr:<p>:tpm, 4 thr:<p>:tpmtok
-- Reply: {leases held, tokens in the TPM window, next call us (GCRA TAT),
--         rpm, tpm, max concurrent (as last passed by a worker), avg call ms,
--         now ms}
-- Counts include leases that expired but were not yet taken back by a call.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'tat', 'rpm', 'tpm', 'maxc', 'avg_ms')
-- the window's sum (entries older than 60 s leave it at the next call)
local inwin = tonumber(redis.call('HGET', KEYS[4], '_sum') or '0') or 0
return { redis.call('ZCOUNT', KEYS[2], now, '+inf'), inwin, h[1] or '0', tonumber(h[2]) or 0,
         tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0, now }
