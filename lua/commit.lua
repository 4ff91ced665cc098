-- Turns an order's reservation into sales (reserved -> sold); idempotent.
--
-- KEYS[1]      the order's reservation record: {<prefix>}:res:<order_id>
-- KEYS[1 + i]  the stock hash of the record's i-th item
-- ARGV[1]      the record's items as the caller read them ("sku=qty,...",
--              may be empty); KEYS[2..] must follow that list
-- ARGV[2]      seconds the COMMITTED record is kept (integer >= 1)
--
-- Every key a script touches must be in KEYS (Redis Cluster), but the stock
-- keys come from the record. So the caller first passes no items; when the
-- record holds some, the reply is 'NEED_KEYS' with the record, and the caller
-- retries with them. Items never change once recorded, so one retry suffices.
--
-- A COMMITTED record is finished: it expires after the retention (restarted
-- by each replay); a RESERVED one never expires.
--
-- Reply: {status, record}
--   'OK'         now COMMITTED (or already was)
--   'NOT_FOUND'  no record for the order
--   'CONFLICT'   RELEASED or REJECTED: there is nothing to commit
--   'NEED_KEYS'  call again with the record's items and their stock keys

local rec = KEYS[1]
local retention = tonumber(ARGV[2])
if not retention or retention < 1 or retention ~= math.floor(retention) then
  return redis.error_reply('ERR commit: retention must be a positive integer of seconds')
end
local state = redis.call('HGET', rec, 'state')
if not state then
  return {'NOT_FOUND', {}}
end
if state == 'COMMITTED' then
  -- A replay restarts the retention of the finished record.
  redis.call('EXPIRE', rec, retention)
  return {'OK', redis.call('HGETALL', rec)}
end
if state ~= 'RESERVED' then
  return {'CONFLICT', redis.call('HGETALL', rec)}
end
local items = redis.call('HGET', rec, 'items') or ''
if ARGV[1] ~= items then
  return {'NEED_KEYS', redis.call('HGETALL', rec)}
end

-- Parse and check everything before the first write (no rollback on error).
local moves = {}
for sku, q in string.gmatch(items, '([^,=]+)=(%d+)') do
  local key = KEYS[#moves + 2]
  q = tonumber(q)
  if not key or tonumber(redis.call('HGET', key, 'reserved') or '0') < q then
    return redis.error_reply('ERR commit: stock of sku ' .. sku .. ' does not hold the reserved units')
  end
  moves[#moves + 1] = {key, q}
end
if #moves ~= #KEYS - 1 then
  return redis.error_reply('ERR commit: expected one stock key per reserved item')
end

for _, m in ipairs(moves) do
  redis.call('HINCRBY', m[1], 'reserved', -m[2])
  redis.call('HINCRBY', m[1], 'sold', m[2])
end
redis.call('HSET', rec, 'state', 'COMMITTED')
redis.call('EXPIRE', rec, retention)
return {'OK', redis.call('HGETALL', rec)}
