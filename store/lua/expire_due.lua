-- Journal an expire command for every given GTD order whose expireTime has come by
-- Redis's clock (like every journal timestamp); orders already final just leave the
-- schedule. store/journal.py reads the candidates (the schedule's earliest, up to a
-- margin past its own clock) and declares their order hashes here.
-- KEYS: 1 GTD schedule (zset id -> expireTime), 2 seq, 3 journal, 4.. candidate order hashes
-- ARGV: 1.. the candidates' order ids (same order as their hashes in KEYS)
-- (the worker's sweep sends the wake-up, as for any journal ahead of its cursor)
-- Returns {journaled count, last sequence}
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local ts = string.format('%d', ms)
local n, seq = 0, 0
for i, id in ipairs(ARGV) do
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= ms then
    redis.call('ZREM', KEYS[1], id)
    local status = redis.call('HGET', KEYS[3 + i], 'status')
    if status and status ~= 'FILLED' and status ~= 'CANCELLED' and status ~= 'REJECTED' then
      seq = redis.call('INCR', KEYS[2])
      redis.call('XADD', KEYS[3], seq .. '-1', 'op', 'expire', 'ts', ts, 'id', id, 'rid', '')
      n = n + 1
    end
  end
end
return {n, seq}
