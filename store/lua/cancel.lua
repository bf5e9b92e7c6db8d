-- Journal a cancel atomically, unless the order is unknown, not the caller's, or final.
-- KEYS: 1 seq, 2 journal, 3 order hash, 4 wake flag
-- ARGV: 1 order id, 2 account that must own it ('' = anyone), 3 request id
-- Returns {1, seq, ts, woke} | {-404} | {-409, status}
local o = redis.call('HMGET', KEYS[3], 'status', 'acct')
if not o[1] then return {-404} end
if ARGV[2] ~= '' and o[2] ~= ARGV[2] then return {-404} end
if o[1] == 'FILLED' or o[1] == 'CANCELLED' or o[1] == 'REJECTED' then return {-409, o[1]} end
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts = string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000))
redis.call('XADD', KEYS[2], seq .. '-1', 'op', 'cancel', 'ts', ts, 'id', ARGV[1], 'rid', ARGV[3])
local woke = redis.call('SET', KEYS[4], '1', 'NX', 'PX', 1000)
return {1, seq, ts, woke and 1 or 0}
