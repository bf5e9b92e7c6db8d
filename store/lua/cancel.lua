-- Journal a command on one existing order (cancel, reduce) atomically, unless the order is
-- unknown, not the caller's, final, or (reduce) the new quantity is not below its quantity.
-- KEYS: 1 seq, 2 journal, 3 order hash, 4 wake flag
-- ARGV: 1 order id, 2 account that must own it ('' = anyone), 3 request id,
--       4 op ('cancel' | 'reduce'), 5 the new total quantity in lots (reduce) or ''
-- Returns {1, seq, ts, woke} | {-404} | {-409, status} | {-400, quantity}
local o = redis.call('HMGET', KEYS[3], 'status', 'acct', 'qty')
if not o[1] then return {-404} end
if ARGV[2] ~= '' and o[2] ~= ARGV[2] then return {-404} end
if o[1] == 'FILLED' or o[1] == 'CANCELLED' or o[1] == 'REJECTED' then return {-409, o[1]} end
if ARGV[4] == 'reduce' and tonumber(ARGV[5]) >= tonumber(o[3]) then return {-400, o[3]} end
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts = string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000))
if ARGV[4] == 'reduce' then
  redis.call('XADD', KEYS[2], seq .. '-1', 'op', 'reduce', 'ts', ts, 'id', ARGV[1],
             'qty', ARGV[5], 'rid', ARGV[3])
else
  redis.call('XADD', KEYS[2], seq .. '-1', 'op', 'cancel', 'ts', ts, 'id', ARGV[1],
             'rid', ARGV[3])
end
local woke = redis.call('SET', KEYS[4], '1', 'NX', 'PX', 1000)
return {1, seq, ts, woke and 1 or 0}
