-- wrk request mix: 10% of requests are denied by the upstream (403 with authz-edge's context
-- headers), the rest are plain 200s; paths carry ids so that route normalisation is exercised.
-- Every request carries the headers a browser sends to a Django site (about 600 bytes).
local browser = {
  ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
  ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
  ["Accept-Language"] = "en-GB,en;q=0.9",
  ["Accept-Encoding"] = "gzip, deflate, br",
  ["Referer"] = "https://shop.example.com/reports/",
  ["Upgrade-Insecure-Requests"] = "1",
  ["Sec-Fetch-Dest"] = "document",
  ["Sec-Fetch-Mode"] = "navigate",
  ["Sec-Fetch-Site"] = "same-origin",
}
local n = 0
request = function()
  n = n + 1
  browser["Cookie"] = "sessionid=s" .. (n % 5000) .. "; csrftoken=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
  if n % 10 == 0 then
    return wrk.format("GET", "/reports/" .. (n % 997) .. "/approve/", browser)
  end
  return wrk.format("GET", "/items/" .. (n % 997) .. "/", browser)
end
