-- wrk script for bench/load.py: a realistic order mix on BTC-USD and ETH-USD.
-- Env: LOAD_BATCH (0: one order per POST /api/orders; N: N orders per POST /api/orders/batch).
-- Per order: 80% GTC limit, 8% IOC limit, 5% MARKET, 7% postOnly limit; prices within
-- +-40 ticks of a mid price, buys skewed down and sells up by 8 ticks so about a third cross.

local batch = tonumber(os.getenv("LOAD_BATCH") or "0")
local markets = {
  {symbol = "BTC-USD", mid = 3000000, lot = 0.001, lots = 500},  -- mid in ticks (30000.00)
  {symbol = "ETH-USD", mid = 200000, lot = 0.01, lots = 300},    -- 2000.00
}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0))
end

local function price(ticks)
  return string.format("%d.%02d", math.floor(ticks / 100), ticks % 100)
end

local function one_order()
  local m = markets[math.random(#markets)]
  local buy = math.random() < 0.5
  local side = buy and "BUY" or "SELL"
  local offset = math.random(-40, 40) + (buy and -8 or 8)
  local qty = string.format("%.3f", math.random(1, m.lots) * m.lot)
  local roll = math.random()
  if roll < 0.05 then
    return string.format('{"symbol":"%s","side":"%s","orderType":"MARKET","quantity":"%s"}',
      m.symbol, side, qty)
  end
  local extra = ""
  if roll < 0.13 then
    extra = ',"timeInForce":"IOC"'
  elseif roll < 0.20 then
    extra = ',"postOnly":true'
  end
  return string.format('{"symbol":"%s","side":"%s","price":"%s","quantity":"%s"%s}',
    m.symbol, side, price(m.mid + offset), qty, extra)
end

local headers = {["Content-Type"] = "application/json"}

function request()
  if batch > 0 then
    local items = {}
    for i = 1, batch do items[i] = one_order() end
    return wrk.format("POST", "/api/orders/batch", headers,
      '{"orders":[' .. table.concat(items, ",") .. ']}')
  end
  return wrk.format("POST", "/api/orders", headers, one_order())
end
