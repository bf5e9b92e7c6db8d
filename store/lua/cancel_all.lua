-- Journal one cancel-all of an account on one symbol, and list (atomically with it) the
-- account's orders on the symbol that are open then: the ones it can cancel.
-- KEYS: 1 seq, 2 journal, 3 the account's open orders on the symbol, 4 wake flag
-- ARGV: 1 account, 2 request id
-- Returns {seq, ts, woke, order id...}
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts = string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000))
redis.call('XADD', KEYS[2], seq .. '-1', 'op', 'cancel_all', 'ts', ts, 'acct', ARGV[1],
           'rid', ARGV[2])
local woke = redis.call('SET', KEYS[4], '1', 'NX', 'PX', 1000)
local out = {seq, ts, woke and 1 or 0}
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do out[#out + 1] = id end
return out
