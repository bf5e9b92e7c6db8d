-- Write one batch of applied commands, fenced: the only call of the commit (store/commit.py),
-- atomic as any script, on one slot (every key is the symbol's). A Lua error is NOT rolled
-- back, so everything that can fail is checked before the first write: the fence, then the
-- shape of the batch. Every key is declared in KEYS: the batch names the per-order and
-- candle keys by their index in KEYS. Every value is a string (notional can pass 2^53,
-- Lua numbers cannot); key indexes are numbers.
-- KEYS: 1 owner lease, 2 applied cursor, 3 resting set, 4 book BUY, 5 book SELL,
--       6 trades stream, 7 volume, 8 trade seq, 9 last price, 10 heartbeat,
--       11 final orders awaiting the archive (score: updated ms), 12 events channel,
--       13.. the batch's order hashes, fills lists, account open-orders sets, candle sets
-- ARGV: 1 lease token, 2 expected cursor, 3 batch JSON {o, t, l, ts?, lp?, c},
--       4 new cursor, 5 now (ms), 6 COMMIT message (store/events.py)
-- Returns 1, or an error 'FENCED ...' / 'BADBATCH ...' having written nothing.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED lease held by another worker')
end
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then
  return redis.error_reply('FENCED cursor moved')
end
local batch = cjson.decode(ARGV[3])

local FIRST_BATCH_KEY = 13
local function is_key(i)
  return type(i) == 'number' and i == math.floor(i) and i >= FIRST_BATCH_KEY and i <= #KEYS
end
-- Each row: its fields are strings except those at key_at, which are KEYS indexes.
local function rows_ok(rows, width, key_at)
  for _, row in ipairs(rows) do
    for i = 1, width do
      if key_at[i] then
        if not is_key(row[i]) then return false end
      elseif type(row[i]) ~= 'string' then
        return false
      end
    end
  end
  return true
end
if not (rows_ok(batch.o, 12, {[1] = true, [10] = true})
        and rows_ok(batch.t, 7, {[3] = true, [4] = true})) then
  return redis.error_reply('BADBATCH order or trade row')
end
for _, l in ipairs(batch.l) do
  if (l[1] ~= 4 and l[1] ~= 5) or type(l[2]) ~= 'string' or type(l[3]) ~= 'string' then
    return redis.error_reply('BADBATCH level row')
  end
end
if batch.ts ~= nil and (type(batch.ts) ~= 'string' or type(batch.lp) ~= 'string') then
  return redis.error_reply('BADBATCH last trade')
end
if not rows_ok(batch.c or {}, 3, {[1] = true}) then
  return redis.error_reply('BADBATCH candle row')
end

-- o: order hash (key index), id, status, reason, filled, notional, updated, sequence,
--    'r' (resting or untriggered) | 'f' (final) | '' (neither),
--    account open-orders set (key index), quantity (a reduce lowers it),
--    queue rank (a triggered stop's is its trigger's)
for _, o in ipairs(batch.o) do
  redis.call('HSET', KEYS[o[1]], 'status', o[3], 'reason', o[4], 'filled', o[5],
             'notional', o[6], 'upd', o[7], 'qty', o[11], 'rank', o[12])
  if o[9] == 'r' then
    redis.call('ZADD', KEYS[3], o[8], o[2])
  elseif o[9] == 'f' then
    redis.call('ZREM', KEYS[3], o[2])
    redis.call('ZREM', KEYS[o[10]], o[2])
    redis.call('ZADD', KEYS[11], o[7], o[2])
  end
end
-- t: stream id, trade JSON, maker fills (key index), taker fills (key index), trade seq,
--    volume minute, lots
for _, t in ipairs(batch.t) do
  redis.call('XADD', KEYS[6], t[1], 't', t[2])
  redis.call('RPUSH', KEYS[t[3]], t[5])
  redis.call('RPUSH', KEYS[t[4]], t[5])
  redis.call('HINCRBY', KEYS[7], t[6], t[7])
end
if batch.ts ~= nil then
  redis.call('SET', KEYS[8], batch.ts)
  redis.call('SET', KEYS[9], batch.lp)
end
-- l: 4 (BUY) or 5 (SELL), price, member "price:qty:count" (store/codec.py) or '' when gone
for _, l in ipairs(batch.l) do
  redis.call('ZREMRANGEBYSCORE', KEYS[l[1]], l[2], l[2])
  if l[3] ~= '' then redis.call('ZADD', KEYS[l[1]], l[2], l[3]) end
end
-- c (candles, store/candles.py): candle set (key index), bucket start, whole member;
-- replaces the bucket's
for _, c in ipairs(batch.c or {}) do
  redis.call('ZREMRANGEBYSCORE', KEYS[c[1]], c[2], c[2])
  redis.call('ZADD', KEYS[c[1]], c[2], c[3])
end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('SET', KEYS[10], ARGV[5])
redis.call('SPUBLISH', KEYS[12], ARGV[6])
return 1
