-- gcra: one client rate-limit bucket (library: sent in front of
-- ratelimit.lua by common/gates.c and of enqueue.lua by common/queue.c; the
-- one definition of the algorithm).
-- A GCRA token bucket: `limit` requests at once, refilled at limit per
-- window (one every window/limit); state is one number, the theoretical
-- arrival time (us, Redis time) in `key`, kept exactly as long as it matters.
-- cost 1 takes one request, 0 only looks.  now_us: Redis TIME in us.
-- Returns allowed 0|1, remaining (after this request), reset ms (until the
-- bucket is full again), retry ms (until one more request would be allowed;
-- 0 if allowed).
local function gcra(key, limit, window_ms, cost, now_us)
  local now, window = now_us, window_ms * 1000
  local T = window / limit
  local tat = tonumber(redis.call('GET', key) or '0')
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
    return 1, remaining(tat), ms(tat - now), ms(retry)
  end
  local new_tat = tat + T * cost
  local allow_at = new_tat - window
  if now < allow_at then
    return 0, remaining(tat), ms(tat - now), ms(allow_at - now)
  end
  -- stored exactly (%.17g round-trips a double): rounding up here would drift
  -- by a microsecond per request and refuse the last one of a burst
  redis.call('SET', key, string.format('%.17g', new_tat), 'PX', ms(new_tat - now) + 1)
  return 1, remaining(new_tat), ms(new_tat - now), 0
end

