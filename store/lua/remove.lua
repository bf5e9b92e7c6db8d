-- Remove what the archive mover has committed in the archive, in one atomic step, fenced.
-- Runs only while the caller holds the symbol's archiver lease; each order is removed only
-- if it is still final with the updatedAt that was copied (else it is left alone).
-- Every key is the symbol's (one slot) and declared here (store/history.py builds them).
-- KEYS: 1 archiver lease, 2 final orders index, 3 trades stream, 4 journal stream,
--       5 archived flag,
--       then per order, 4 keys: order hash, fills list, account orders, account open orders
-- ARGV: 1 lease token, 2 lowest trade stream id to keep ('' = keep all),
--       3 lowest journal stream id to keep ('' = keep all),
--       then per order (same order as its keys): id, updatedAt copied
-- Returns {orders removed, orders left because they changed}, or 'FENCED ...'.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED archiver lease held by another mover')
end
local removed, changed = 0, 0
local orders = (#ARGV - 3) / 2
for j = 0, orders - 1 do
  local id, upd, k = ARGV[4 + 2 * j], ARGV[5 + 2 * j], 6 + 4 * j
  -- KEYS[k]: order hash, k + 1: fills, k + 2: account orders, k + 3: account open orders
  local o = redis.call('HMGET', KEYS[k], 'status', 'upd')
  if not o[1] then
    redis.call('ZREM', KEYS[2], id)  -- removed by an earlier run that died before here
  elseif (o[1] == 'FILLED' or o[1] == 'CANCELLED' or o[1] == 'REJECTED') and o[2] == upd then
    redis.call('DEL', KEYS[k], KEYS[k + 1])
    redis.call('ZREM', KEYS[k + 2], id)
    redis.call('ZREM', KEYS[k + 3], id)
    redis.call('ZREM', KEYS[2], id)
    removed = removed + 1
  else
    changed = changed + 1
  end
end
if ARGV[2] ~= '' then redis.call('XTRIM', KEYS[3], 'MINID', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[4], 'MINID', ARGV[3]) end
redis.call('SET', KEYS[5], '1')
return {removed, changed}
