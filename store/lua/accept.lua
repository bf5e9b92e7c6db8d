-- Accept one order atomically: idempotency, sequence, journal, PENDING order, indexes, wake-up,
-- and the ACCEPTED message (store/events.py: Lua only frames the payload built in Python).
-- Every key is the symbol's (one slot); the account's indexes are per (account, symbol).
-- KEYS: 1 seq, 2 journal, 3 order hash, 4 account orders, 5 account open orders,
--       6 account clientOrderId map, 7 wake flag, 8 account acceptance number n,
--       9 the symbol's GTD schedule (zset order id -> expireTime), 10 events channel
-- ARGV: 1 order id, 2 clientOrderId or '', 3 max open orders (0: none),
--       4 the PENDING order JSON without sequence/timestamp/updatedAt,
--       5 sym, 6 acct, 7 side, 8 otype, 9 tif, 10 post, 11 stp, 12 price, 13 qty,
--       14 stop, 15 exp, 16 rep, 17 rid (store/codec.py order_values)
-- The field names are here, not in ARGV, and id / coid / oqty reuse ARGV 1 / 2 / 13: 17
-- arguments instead of 36 (store/codec.py says why; the entry and the hash are the same
-- fields in the same order as codec.order_fields).
-- Returns {1, seq, ts, woke} | {0, existing order id} | {-1, ''} (too many open orders)
if ARGV[2] ~= '' then
  local existing = redis.call('HGET', KEYS[6], ARGV[2])
  if existing then return {0, existing} end
end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('ZCARD', KEYS[5]) >= limit then return {-1, ''} end
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local ts = string.format('%d', ms)
local fields = {'id', ARGV[1], 'sym', ARGV[5], 'acct', ARGV[6], 'side', ARGV[7],
                'otype', ARGV[8], 'tif', ARGV[9], 'post', ARGV[10], 'stp', ARGV[11],
                'coid', ARGV[2], 'price', ARGV[12], 'qty', ARGV[13], 'oqty', ARGV[13],
                'stop', ARGV[14], 'exp', ARGV[15], 'rep', ARGV[16], 'rid', ARGV[17]}
if ARGV[15] ~= '' then redis.call('ZADD', KEYS[9], ARGV[15], ARGV[1]) end
redis.call('XADD', KEYS[2], seq .. '-1', 'op', 'place', 'ts', ts, unpack(fields))
-- n orders the account's lists, across symbols too (store/keys.py): the acceptance time
-- in ms * 1000, kept strictly increasing per (account, symbol). Formatted with %d: Lua's
-- own number-to-string would write 1.7e+15.
local n = ms * 1000
local prev = tonumber(redis.call('GET', KEYS[8]) or '0')
if n <= prev then n = prev + 1 end
n = string.format('%d', n)
redis.call('SET', KEYS[8], n)
redis.call('HSET', KEYS[3], 'seq', seq, 'ts', ts, 'upd', ts, 'status', 'PENDING',
           'filled', '0', 'notional', '0', 'reason', '', 'n', n, unpack(fields))
redis.call('ZADD', KEYS[4], n, ARGV[1])
redis.call('ZADD', KEYS[5], n, ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[6], ARGV[2], ARGV[1]) end
-- One matching task per burst: the flag lives until the worker picks it up (or 1 s, so a
-- web process that died before sending its task only delays the periodic sweep).
local woke = redis.call('SET', KEYS[7], '1', 'NX', 'PX', 1000)
redis.call('SPUBLISH', KEYS[10], 'A' .. seq .. '|' .. ts .. '|' .. ARGV[4])
return {1, seq, ts, woke and 1 or 0}
