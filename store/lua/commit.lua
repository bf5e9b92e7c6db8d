-- Write one batch of applied commands, fenced. store/commit.py sends it as the only command
-- of a MULTI/EXEC. A Lua error is NOT rolled back, so everything that can fail is checked
-- before the first write: the fence, then the shape of the batch. Key names all come from
-- store/keys.py (in KEYS or in the batch); every value is a string (notional can pass 2^53,
-- Lua numbers cannot).
-- KEYS: 1 owner lease, 2 applied cursor, 3 resting set, 4 book BUY, 5 book SELL,
--       6 trades stream, 7 volume, 8 trade seq, 9 last price, 10 heartbeat,
--       11 final orders awaiting the archive (score: updated ms), 12 events channel
-- ARGV: 1 lease token, 2 expected cursor, 3 batch JSON {o, t, l, ts?, lp?, c},
--       4 new cursor, 5 now (ms), 6 event message
-- Returns 1, or an error 'FENCED ...' / 'BADBATCH ...' having written nothing.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED lease held by another worker')
end
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then
  return redis.error_reply('FENCED cursor moved')
end
local batch = cjson.decode(ARGV[3])

local function all_strings(rows, width)
  for _, row in ipairs(rows) do
    for i = 1, width do
      if type(row[i]) ~= 'string' then return false end
    end
  end
  return true
end
if not (all_strings(batch.o, 12) and all_strings(batch.t, 7)) then
  return redis.error_reply('BADBATCH order or trade row with a non-string field')
end
for _, l in ipairs(batch.l) do
  if (l[1] ~= 4 and l[1] ~= 5) or type(l[2]) ~= 'string' or type(l[3]) ~= 'string' then
    return redis.error_reply('BADBATCH level row')
  end
end
if batch.ts ~= nil and (type(batch.ts) ~= 'string' or type(batch.lp) ~= 'string') then
  return redis.error_reply('BADBATCH last trade')
end
if not all_strings(batch.c or {}, 3) then
  return redis.error_reply('BADBATCH candle row')
end

-- o: order key, id, status, reason, filled, notional, updated, sequence,
--    'r' (resting or untriggered) | 'f' (final) | '' (neither), account open-orders key,
--    quantity (a reduce lowers it), queue rank (a triggered stop's is its trigger's)
for _, o in ipairs(batch.o) do
  redis.call('HSET', o[1], 'status', o[3], 'reason', o[4], 'filled', o[5], 'notional', o[6],
             'upd', o[7], 'qty', o[11], 'rank', o[12])
  if o[9] == 'r' then
    redis.call('ZADD', KEYS[3], o[8], o[2])
  elseif o[9] == 'f' then
    redis.call('ZREM', KEYS[3], o[2])
    redis.call('ZREM', o[10], o[2])
    redis.call('ZADD', KEYS[11], o[7], o[2])
  end
end
-- t: stream id, trade JSON, maker fills key, taker fills key, trade seq, volume minute, lots
for _, t in ipairs(batch.t) do
  redis.call('XADD', KEYS[6], t[1], 't', t[2])
  redis.call('RPUSH', t[3], t[5])
  redis.call('RPUSH', t[4], t[5])
  redis.call('HINCRBY', KEYS[7], t[6], t[7])
end
if batch.ts ~= nil then
  redis.call('SET', KEYS[8], batch.ts)
  redis.call('SET', KEYS[9], batch.lp)
end
-- l: 4 (BUY) or 5 (SELL), price, member "price:qty:count" or '' when the level is gone
for _, l in ipairs(batch.l) do
  local key = KEYS[l[1]]
  redis.call('ZREMRANGEBYSCORE', key, l[2], l[2])
  if l[3] ~= '' then redis.call('ZADD', key, l[2], l[3]) end
end
-- c (candles, store/candles.py): key, bucket start, whole member; replaces the bucket's
for _, c in ipairs(batch.c or {}) do
  redis.call('ZREMRANGEBYSCORE', c[1], c[2], c[2])
  redis.call('ZADD', c[1], c[2], c[3])
end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('SET', KEYS[10], ARGV[5])
redis.call('SPUBLISH', KEYS[12], ARGV[6])
return 1
