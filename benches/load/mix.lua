-- wrk request mix: 10% of requests are denied by the upstream (403 with authz-edge's context
-- headers), the rest are plain 200s; paths carry ids so that route normalisation is exercised.
local n = 0
request = function()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format("GET", "/reports/" .. (n % 997) .. "/approve/", {["Cookie"] = "sessionid=s" .. (n % 5000)})
  end
  return wrk.format("GET", "/items/" .. (n % 997) .. "/", nil)
end
