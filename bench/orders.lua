-- wrk script for bench/orders.py: POST /orders with one line of quantity 1.
--
--   wrk -t 2 -c 8 -d 10s http://127.0.0.1:8765/orders -s bench/orders.lua -- MODE TOKEN PRODUCTS
--
-- MODE is "hot" (always SKU-00001) or "spread" (a random SKU of SKU-00001..SKU-<PRODUCTS>
-- per request). done() prints one line starting with "BENCH " that orders.py parses:
-- key=value pairs, latencies in microseconds, statuses as "code:count,...".

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   table.insert(threads, thread)
   next_id = next_id + 1
end

function init(args)
   mode = args[1] or "hot"
   products = tonumber(args[3] or "10000")
   ok = 0
   non2xx = 0
   statuses = {}
   wrk.method = "POST"
   wrk.headers["Authorization"] = "Bearer " .. (args[2] or "")
   wrk.headers["Content-Type"] = "application/json"
   math.randomseed(os.time() * 100 + (id or 0))
   -- The first values after seeding are poorly mixed in some Lua versions.
   for _ = 1, 10 do math.random() end
   if mode == "hot" then
      hot_request = wrk.format(nil, nil, nil, body_for("SKU-00001"))
   elseif mode ~= "spread" then
      error("MODE must be hot or spread, got " .. tostring(mode))
   end
end

function body_for(sku)
   return '{"fulfillment": "delivery", "lines": [{"sku": "' .. sku .. '", "quantity": "1"}]}'
end

function request()
   if hot_request then
      return hot_request
   end
   local sku = string.format("SKU-%05d", math.random(1, products))
   return wrk.format(nil, nil, nil, body_for(sku))
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local total_ok, total_non2xx, merged = 0, 0, {}
   for _, thread in ipairs(threads) do
      total_ok = total_ok + (thread:get("ok") or 0)
      total_non2xx = total_non2xx + (thread:get("non2xx") or 0)
      for code, count in pairs(thread:get("statuses") or {}) do
         merged[code] = (merged[code] or 0) + count
      end
   end
   local parts = {}
   for code, count in pairs(merged) do
      table.insert(parts, string.format("%d:%d", code, count))
   end
   table.sort(parts)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d ok=%d non2xx=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d"
         .. " max_us=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d"
         .. " statuses=%s\n",
      summary.requests, total_ok, total_non2xx, summary.duration,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout,
      (#parts > 0) and table.concat(parts, ",") or "-"))
end
