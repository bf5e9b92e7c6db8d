-- Journal an expire command for every GTD order of one symbol whose expireTime has come
-- (by Redis's clock, like every journal timestamp), at most ARGV[2] of them; orders
-- already final just leave the schedule.
-- KEYS: 1 GTD schedule (zset id -> expireTime), 2 seq, 3 journal
-- (the worker's sweep sends the wake-up, as for any journal ahead of its cursor)
-- ARGV: 1 order key prefix (store/keys.py), 2 at most this many
-- Returns {journaled count, last sequence}
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local ts = string.format('%d', ms)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ts, 'LIMIT', 0, tonumber(ARGV[2]))
local n, seq = 0, 0
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local status = redis.call('HGET', ARGV[1] .. id, 'status')
  if status and status ~= 'FILLED' and status ~= 'CANCELLED' and status ~= 'REJECTED' then
    seq = redis.call('INCR', KEYS[2])
    redis.call('XADD', KEYS[3], seq .. '-1', 'op', 'expire', 'ts', ts, 'id', id, 'rid', '')
    n = n + 1
  end
end
return {n, seq}
