-- Adds a signed delta to a SKU's available stock, never below zero nor above
-- 10^12 (kept well inside the integers Lua numbers hold exactly). A positive
-- delta on an unknown SKU creates it. The SKU's total stocked units
-- (`stocked`, see set_stock.lua) move by the same delta; a SKU stocked
-- before that field existed gets it from its next set_stock only, so
-- `orderly verify` keeps reporting it until then.
--
-- KEYS[1]  the SKU's stock hash: {<prefix>}:stock:<sku>
-- KEYS[2]  optional: the request's idempotency marker {<prefix>}:adj:<id>
-- ARGV[1]  the delta, a non-zero integer
-- ARGV[2]  with KEYS[2]: seconds the marker is kept
--
-- Reply: {status, available, reserved, sold} (the levels after the call)
--   'OK'            applied
--   'REPLAY'        the request id was applied before: nothing changed
--   'MISMATCH'      the request id was used with another sku or delta
--   'OUT_OF_RANGE'  not applied: available would leave 0..10^12

local key = KEYS[1]
local marker = KEYS[2]
local delta = tonumber(ARGV[1])
if not delta or delta == 0 or delta ~= math.floor(delta) then
  return redis.error_reply('ERR adjust_stock: delta must be a non-zero integer')
end
local level = redis.call('HMGET', key, 'available', 'reserved', 'sold')
if marker then
  local seen = redis.call('HMGET', marker, 'stock', 'delta')
  if seen[1] then
    local status = 'REPLAY'
    if seen[1] ~= key or tonumber(seen[2]) ~= delta then status = 'MISMATCH' end
    return {status, tonumber(level[1] or '0'), tonumber(level[2] or '0'), tonumber(level[3] or '0')}
  end
end
local available = tonumber(level[1] or '0')
local reserved = tonumber(level[2] or '0')
local sold = tonumber(level[3] or '0')
local after = available + delta
if after < 0 or after > 1000000000000 then
  return {'OUT_OF_RANGE', available, reserved, sold}
end
local known = level[1] ~= false
local tracked = redis.call('HEXISTS', key, 'stocked') == 1
redis.call('HINCRBY', key, 'available', string.format('%d', delta))
redis.call('HSETNX', key, 'reserved', 0)
redis.call('HSETNX', key, 'sold', 0)
if tracked then
  redis.call('HINCRBY', key, 'stocked', string.format('%d', delta))
elseif not known then
  redis.call('HSET', key, 'stocked', string.format('%d', after + reserved + sold))
end
if marker then
  redis.call('HSET', marker, 'stock', key, 'delta', string.format('%d', delta))
  redis.call('EXPIRE', marker, tonumber(ARGV[2]))
end
return {'OK', after, reserved, sold}
