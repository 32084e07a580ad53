-- wrk script for bench/auth/run.py: nginx mail's auth_http requests, one user after the other.
--
-- Environment:
--   BENCH_USERS_FILE  lines "user<TAB>password" (the pre-warmed users)
--   BENCH_CLOSE       "1": send `Connection: close`, a new connection per request (as nginx mail
--                     does); otherwise keep-alive
--   BENCH_CHECK       "1": also look at every answer and count those without `Auth-Status: OK`
--                     ("bad" in the BENCH line). Only for the check runs: wrk parses the headers
--                     of every response into a Lua table when a response() function exists,
--                     which slows the loader down
--
-- Each thread starts at a different user and walks the list round-robin. The requests are
-- formatted once in init (wrk.format), so the loader spends nothing per request on Lua.
-- done() prints one machine-readable line, "BENCH <json>", with the counts and percentiles.

local reqs = {}
local i = 0
local thread_no = 0

local function escape(s)
    -- nginx escapes Auth-User/Auth-Pass as %XX (ngx_escape_uri, NGX_ESCAPE_MAIL_AUTH)
    return (s:gsub("[^%w%.%-_@]", function(c) return string.format("%%%02X", c:byte()) end))
end

local threads = {}

function setup(thread)
    thread:set("thread_no", thread_no)
    thread_no = thread_no + 1
    threads[#threads + 1] = thread
end

bad = 0
if os.getenv("BENCH_CHECK") == "1" then
    function response(status, headers, body)
        if headers["Auth-Status"] ~= "OK" then
            bad = bad + 1
        end
    end
end

function init(args)
    local path = os.getenv("BENCH_USERS_FILE") or error("BENCH_USERS_FILE is not set")
    local close = os.getenv("BENCH_CLOSE") == "1"
    for line in io.lines(path) do
        local user, pass = line:match("^([^\t]+)\t(.*)$")
        if user then
            local h = {
                ["Host"] = "localhost",
                ["Auth-Method"] = "plain",
                ["Auth-User"] = escape(user),
                ["Auth-Pass"] = escape(pass),
                ["Auth-Protocol"] = "imap",
                ["Auth-Login-Attempt"] = "1",
                ["Client-IP"] = "192.0.2.7",
                ["Client-Host"] = "[UNAVAILABLE]",
            }
            if close then
                h["Connection"] = "close"
            end
            reqs[#reqs + 1] = wrk.format("GET", nil, h)
        end
    end
    if #reqs == 0 then
        error("no users in " .. path)
    end
    i = (thread_no * 7919) % #reqs
end

function request()
    i = i % #reqs + 1
    return reqs[i]
end

function done(summary, latency, requests)
    local e = summary.errors
    local nbad = 0
    for _, t in ipairs(threads) do
        nbad = nbad + (t:get("bad") or 0)
    end
    io.write(string.format(
        'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
            .. '"timeout":%d,"bad":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
        summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, nbad,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
        latency.max))
end
