-- Write one batch of applied commands. Runs inside the fenced MULTI/EXEC of store/commit.py,
-- so it lands whole or not at all. Key names all come from store/keys.py (in KEYS or in the
-- batch); every value is a string (notional can pass 2^53, Lua numbers cannot).
-- KEYS: 1 resting set, 2 book BUY, 3 book SELL, 4 trades stream, 5 volume, 6 trade seq,
--       7 last price, 8 applied cursor, 9 heartbeat
-- ARGV: 1 batch JSON {o: orders, t: trades, l: levels, ts: last trade seq, lp: last price},
--       2 new applied sequence, 3 now (ms), 4 events channel, 5 event message
local batch = cjson.decode(ARGV[1])
-- o: order key, id, status, reason, filled, notional, updated, sequence,
--    'r' (resting) | 'f' (final) | '' (unchanged place), account open-orders key
for _, o in ipairs(batch.o) do
  redis.call('HSET', o[1], 'status', o[3], 'reason', o[4], 'filled', o[5], 'notional', o[6],
             'upd', o[7])
  if o[9] == 'r' then
    redis.call('ZADD', KEYS[1], o[8], o[2])
  elseif o[9] == 'f' then
    redis.call('ZREM', KEYS[1], o[2])
    redis.call('ZREM', o[10], o[2])
  end
end
-- t: stream id, trade JSON, maker fills key, taker fills key, trade seq, volume minute, lots
for _, t in ipairs(batch.t) do
  redis.call('XADD', KEYS[4], t[1], 't', t[2])
  redis.call('RPUSH', t[3], t[5])
  redis.call('RPUSH', t[4], t[5])
  redis.call('HINCRBY', KEYS[5], t[6], t[7])
end
if batch.ts then
  redis.call('SET', KEYS[6], batch.ts)
  redis.call('SET', KEYS[7], batch.lp)
end
-- l: 2 (BUY) or 3 (SELL), price, member "price:qty:count" or '' when the level is gone
for _, l in ipairs(batch.l) do
  local key = KEYS[l[1]]
  redis.call('ZREMRANGEBYSCORE', key, l[2], l[2])
  if l[3] ~= '' then redis.call('ZADD', key, l[2], l[3]) end
end
redis.call('SET', KEYS[8], ARGV[2])
redis.call('SET', KEYS[9], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
