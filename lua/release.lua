-- Returns an order's reserved units to available stock; idempotent.
--
-- KEYS[1]      the order's reservation record: {<prefix>}:res:<order_id>
-- KEYS[1 + i]  the stock hash of the record's i-th item
-- ARGV[1]      the record's items as the caller read them (see commit.lua:
--              'NEED_KEYS' asks the caller to retry with them)
-- ARGV[2]      seconds the RELEASED record (or tombstone) is kept
--              (integer >= 1); after that a late reserve is no longer blocked
--
-- No record: writes a RELEASED tombstone (no 'outcome', no items) so that a
-- late reserve for the order reserves nothing. REJECTED -> RELEASED holds
-- nothing to return; the rejection fields stay so reserve replays still
-- answer REJECTED with the same reason. A RELEASED record is finished: it
-- expires after the retention (restarted by each replay), so a tombstone
-- blocks a late reserve only that long.
--
-- Reply: {status, record}
--   'OK'         now RELEASED (or already was)
--   'CONFLICT'   COMMITTED: sold units are not released
--   'NEED_KEYS'  call again with the record's items and their stock keys

local rec = KEYS[1]
local retention = tonumber(ARGV[2])
if not retention or retention < 1 or retention ~= math.floor(retention) then
  return redis.error_reply('ERR release: retention must be a positive integer of seconds')
end
local state = redis.call('HGET', rec, 'state')
if state == 'COMMITTED' then
  return {'CONFLICT', redis.call('HGETALL', rec)}
end
-- No record (tombstone), a rejection (nothing held) or a replay: RELEASED,
-- kept for the retention from now.
if state ~= 'RESERVED' then
  redis.call('HSET', rec, 'state', 'RELEASED')
  redis.call('EXPIRE', rec, retention)
  return {'OK', redis.call('HGETALL', rec)}
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
    return redis.error_reply('ERR release: stock of sku ' .. sku .. ' does not hold the reserved units')
  end
  moves[#moves + 1] = {key, q}
end
if #moves ~= #KEYS - 1 then
  return redis.error_reply('ERR release: expected one stock key per reserved item')
end

for _, m in ipairs(moves) do
  redis.call('HINCRBY', m[1], 'reserved', -m[2])
  redis.call('HINCRBY', m[1], 'available', m[2])
end
redis.call('HSET', rec, 'state', 'RELEASED')
redis.call('EXPIRE', rec, retention)
return {'OK', redis.call('HGETALL', rec)}
