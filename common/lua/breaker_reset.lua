-- breaker_reset: an operator closes a breaker by hand.  The generation moves
-- on, so results of calls admitted before the reset are ignored; the
-- sliding window starts empty.
-- KEYS: 1 cb:<p>
-- Reply: the new generation.
local cb = cb_load(KEYS[1])
cb_close(cb)
cb_save(cb)
return cb.gen
