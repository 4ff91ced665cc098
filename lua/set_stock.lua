-- Sets a SKU's available stock to an absolute quantity; reserved and sold
-- units are untouched. Creates the SKU (making it known to reserve).
-- Records the SKU's total stocked units (available + reserved + sold), the
-- figure `orderly verify` balances the counters against.
--
-- KEYS[1]  the SKU's stock hash: {<prefix>}:stock:<sku>
-- ARGV[1]  the new available quantity, 0..1000000000
--
-- Reply: {'OK', available, reserved, sold}

local key = KEYS[1]
local q = tonumber(ARGV[1])
if not q or q < 0 or q > 1000000000 or q ~= math.floor(q) then
  return redis.error_reply('ERR set_stock: quantity must be an integer in 0..1000000000')
end
redis.call('HSET', key, 'available', string.format('%d', q))
redis.call('HSETNX', key, 'reserved', 0)
redis.call('HSETNX', key, 'sold', 0)
local level = redis.call('HMGET', key, 'available', 'reserved', 'sold')
redis.call('HSET', key, 'stocked',
  string.format('%d', tonumber(level[1]) + tonumber(level[2]) + tonumber(level[3])))
return {'OK', tonumber(level[1]), tonumber(level[2]), tonumber(level[3])}
