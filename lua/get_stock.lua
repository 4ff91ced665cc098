-- Reads the levels of several SKUs in one consistent snapshot.
--
-- KEYS[i]  the stock hash of SKU i: {<prefix>}:stock:<sku>
--
-- Reply: four integers per key, in order: known (1 or 0), available,
-- reserved, sold (zeros when unknown).

local out = {}
for _, key in ipairs(KEYS) do
  local level = redis.call('HMGET', key, 'available', 'reserved', 'sold')
  if level[1] then
    out[#out + 1] = 1
    out[#out + 1] = tonumber(level[1])
    out[#out + 1] = tonumber(level[2] or '0')
    out[#out + 1] = tonumber(level[3] or '0')
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
