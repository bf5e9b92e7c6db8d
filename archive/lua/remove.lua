-- Remove what the mover has committed in the archive, in one atomic step, fenced.
-- Runs only while the caller holds the symbol's archiver lease; each order is removed only
-- if it is still final with the updatedAt that was copied (else it is left alone).
-- KEYS: 1 archiver lease, 2 final orders index, 3 trades stream, 4 journal stream,
--       5 archived flag
-- ARGV: 1 lease token, 2 lowest trade stream id to keep ('' = keep all),
--       3 lowest journal stream id to keep ('' = keep all),
--       4.. per order: id, updatedAt, order key, fills key, account orders key,
--       account open-orders key
-- Returns {orders removed, orders left because they changed}, or 'FENCED ...'.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED archiver lease held by another mover')
end
local removed, changed = 0, 0
for i = 4, #ARGV, 6 do
  local id, upd = ARGV[i], ARGV[i + 1]
  local o = redis.call('HMGET', ARGV[i + 2], 'status', 'upd')
  if not o[1] then
    redis.call('ZREM', KEYS[2], id)  -- removed by an earlier run that died before here
  elseif (o[1] == 'FILLED' or o[1] == 'CANCELLED' or o[1] == 'REJECTED') and o[2] == upd then
    redis.call('DEL', ARGV[i + 2], ARGV[i + 3])
    redis.call('ZREM', ARGV[i + 4], id)
    redis.call('ZREM', ARGV[i + 5], id)
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
