-- wrk: every request asks for a 20 KiB HTML page and accepts gzip only (the coding nginx
-- has), with a browser's other headers; compare.py --page.
local headers = {
  ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
  ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  ["Accept-Encoding"] = "gzip",
  ["Cookie"] = "sessionid=s1; csrftoken=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
}
request = function()
  return wrk.format("GET", "/page.html", headers)
end
