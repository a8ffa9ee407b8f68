-- budget_killswitch: an operator turns the kill-switch on (with a reason) or
-- off.  The switch is the queue's kill-switch key: while it exists enqueue
-- refuses new jobs (429 BUDGET_LIMIT_EXCEEDED) and paid claims hand out
-- nothing.  Turned on by hand it stays on until turned off by hand.
-- KEYS: 1 budget:killswitch
-- ARGV: 1 '1' on | '0' off, 2 reason, 3 source
-- Reply: 1 if it was on before, else 0.
local was = redis.call('EXISTS', KEYS[1])
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'reason', ARGV[2], 'source', ARGV[3], 'since', int(NOW))
else
  redis.call('DEL', KEYS[1])
end
return was
