-- Reserves every item of an order, or none, atomically; idempotent per order.
--
-- KEYS[1]      the order's reservation record: {<prefix>}:res:<order_id>
-- KEYS[1 + i]  the stock hash of item i: {<prefix>}:stock:<sku>
-- ARGV[1]      seconds a finished record (REJECTED, COMMITTED, RELEASED) is
--              kept (integer >= 1); an open RESERVED record never expires
-- ARGV[2i]     the SKU of item i;  ARGV[2i + 1] its quantity (integer >= 1)
--
-- Reply: {status, record} where record is the record's HGETALL after the call.
--   'OK'        first call (RESERVED or REJECTED recorded) or a replay of it;
--               a RELEASED tombstone without 'outcome' is returned untouched
--               and means "released before reserved": nothing is reserved.
--               A replay of a finished record restarts its retention.
--   'MISMATCH'  the order was already reserved with different items.
--
-- Record fields: state, outcome, items ("sku=qty,..." merged and sorted),
-- and when rejected: code, reason, sku, shortfall.

local rec = KEYS[1]
local n = #KEYS - 1
if n < 1 or #ARGV ~= 2 * n + 1 then
  return redis.error_reply('ERR reserve: expected the retention, then one stock key and one sku/quantity pair per item')
end
local retention = tonumber(ARGV[1])
if not retention or retention < 1 or retention ~= math.floor(retention) then
  return redis.error_reply('ERR reserve: retention must be a positive integer of seconds')
end

-- Merge duplicate SKUs and sort them, so the recorded items are canonical and
-- a replay listing the same items in another order matches.
local qty_of, key_of, skus = {}, {}, {}
for i = 1, n do
  local sku = ARGV[2 * i]
  local q = tonumber(ARGV[2 * i + 1])
  if sku == '' or string.find(sku, '[^%w%._%-]') then
    return redis.error_reply('ERR reserve: malformed sku')
  end
  if not q or q < 1 or q ~= math.floor(q) then
    return redis.error_reply('ERR reserve: quantity must be a positive integer')
  end
  if qty_of[sku] then
    if key_of[sku] ~= KEYS[1 + i] then
      return redis.error_reply('ERR reserve: one sku passed with two stock keys')
    end
    qty_of[sku] = qty_of[sku] + q
  else
    qty_of[sku] = q
    key_of[sku] = KEYS[1 + i]
    skus[#skus + 1] = sku
  end
end
table.sort(skus)
local parts = {}
for _, sku in ipairs(skus) do
  parts[#parts + 1] = sku .. '=' .. string.format('%d', qty_of[sku])
end
local items = table.concat(parts, ',')

local state = redis.call('HGET', rec, 'state')
if state then
  -- A replay answers what was recorded the first time and changes nothing.
  if redis.call('HEXISTS', rec, 'outcome') == 1 and redis.call('HGET', rec, 'items') ~= items then
    return {'MISMATCH', redis.call('HGETALL', rec)}
  end
  if state ~= 'RESERVED' then
    -- Someone still asks about it: keep the answer (a tombstone keeps
    -- blocking) for another full retention period.
    redis.call('EXPIRE', rec, retention)
  end
  return {'OK', redis.call('HGETALL', rec)}
end

-- Check every SKU before writing anything: Redis does not roll back a script
-- that fails half-way, so all-or-nothing means no write before the last check.
for _, sku in ipairs(skus) do
  local available = redis.call('HGET', key_of[sku], 'available')
  local code, reason, shortfall
  if not available then
    code, shortfall = 'UNKNOWN_SKU', 0
    reason = 'unknown sku ' .. sku
  elseif tonumber(available) < qty_of[sku] then
    code, shortfall = 'INSUFFICIENT_STOCK', qty_of[sku] - tonumber(available)
    reason = string.format('insufficient stock for sku %s: requested %d, available %d',
      sku, qty_of[sku], tonumber(available))
  end
  if code then
    redis.call('HSET', rec, 'state', 'REJECTED', 'outcome', 'REJECTED', 'items', items,
      'code', code, 'reason', reason, 'sku', sku, 'shortfall', string.format('%d', shortfall))
    redis.call('EXPIRE', rec, retention)
    return {'OK', redis.call('HGETALL', rec)}
  end
end

for _, sku in ipairs(skus) do
  redis.call('HINCRBY', key_of[sku], 'available', -qty_of[sku])
  redis.call('HINCRBY', key_of[sku], 'reserved', qty_of[sku])
end
redis.call('HSET', rec, 'state', 'RESERVED', 'outcome', 'RESERVED', 'items', items)
return {'OK', redis.call('HGETALL', rec)}
