-- Reference auth_http script for nginx mail under Debian's libnginx-mod-http-lua (ngx_lua
-- 0.10.23 + lua-resty-core, LuaJIT): the decision ngx-mailauth makes, written the way the Lua
-- script it replaces worked. Kept as the benchmark baseline (bench/auth/), not for production.
--
-- The decision, in the module's order (ngx-mailauth/src/decision.rs, flow.rs, routing.rs):
--
--   1. parse: Auth-Method, Auth-User, Auth-Pass, Auth-Protocol, Auth-Login-Attempt, Client-IP;
--      duplicates or missing headers -> temporary failure; Auth-User/Auth-Pass are %XX-unescaped
--      and a CR, LF, NUL (or, in the user name, any control character) is answered like a wrong
--      password, never copied into an answer
--   2. user name outside [A-Za-z0-9._@+-], a method other than plain/login, an empty password
--      -> invalid login
--   3. Redis, one round trip (MGET): the failure counters of the user and of the client address
--      and the cached credential; locked out -> refusal; cached credential equal to
--      HMAC-SHA256(secret, user NUL pass) -> verified
--   4. otherwise the users file (user:$argon2id$... lines, mailstored's format) through
--      libargon2; valid -> SETEX the credential; wrong -> INCR (+EXPIRE) the failure counters
--   5. roles (from a lua_shared_dict filled at start): the serving backend (its own when up, the
--      partner in failover), a temporary failure when down or the user is being moved, the old
--      platform for a legacy user, a final refusal without Auth-Wait for a user without a role
--   6. answer Auth-Status OK, Auth-Server, Auth-Port and, as Auth-Pass, an MST1 login ticket
--      (ticket/src/lib.rs) signed with the ticket key: the same ticket the module hands out,
--      which mailstored verifies; the user's password never reaches a backend
--
-- Differences from the module (why it replaces this script):
--   - every login talks to Redis; the module answers repeated logins from a per-worker tier
--     without any I/O and goes to Redis off the event loop (nginx thread pool)
--   - the argon2 check of a cache miss runs in the nginx worker and blocks it (tens of ms per
--     miss, every other request of that worker waits); no LDAP directory
--   - when Redis is down, failures are not counted in the worker (the module counts locally)
--   - the roles are a snapshot taken when nginx starts (reload nginx to see changes); the module
--     reads the live LMDB roles database
--
-- Cache keys and values are the module's (cache.rs): key `mailauth:cred:<hex HMAC-SHA256(secret,
-- user)>`, value hex HMAC-SHA256(secret, user NUL pass), so a frontend running this script and
-- one running the module share one Redis. HMAC-SHA256, SHA-256 and the random nonce come from the
-- OpenSSL libcrypto that Debian's nginx is linked with (LuaJIT FFI): Debian ships no
-- lua-resty-string, and ngx_lua itself only offers ngx.hmac_sha1.
--
-- Use (see lua/README.md):
--
--   lua_package_path "/path/to/lua/?.lua;;";
--   lua_shared_dict mailauth_roles 32m;
--   init_by_lua_block {
--       require("auth").init({
--           roles = "/path/roles.csv",          -- mailctl roles --db DIR export
--           backends = "/path/backends.txt",    -- mailctl roles --db DIR backend list
--           users = "/path/users",              -- optional: user:$argon2id$... lines
--           redis = "127.0.0.1:6379",           -- optional (no cache, no lockout without it)
--           cache_secret = "/path/cache.secret",-- >= 16 bytes
--           cache_ttl = 3600,
--           ticket_key = "/path/ticket.key",    -- mailctl ticket-key generate
--           ticket_ttl = 60,
--           fail_delay = 3, max_attempts = 3,
--           lockout_failures = 10, lockout_window = 600,   -- optional
--       })
--   }
--   location = /auth { content_by_lua_block { require("auth").handle() } }

local ffi = require("ffi")

local ngx = ngx
local byte, char, sub, find, format, lower = string.byte, string.char, string.sub, string.find,
    string.format, string.lower
local concat = table.concat
local tonumber, tostring, type, pairs, ipairs = tonumber, tostring, type, pairs, ipairs

local _M = {}

local INVALID_LOGIN = "Invalid login or password"
local TEMP_FAILURE = "Temporary server problem, try again later"
local LOCKED_OUT = "Too many failed logins, try again later"
local NO_MAILBOX = "No mailbox for this user"
local MAILBOX_UNAVAILABLE = "Mailbox temporarily unavailable, try again later"
local NO_SUCH_SERVICE = "Service not available for this protocol"

local MAX_USERNAME_BYTES = 255
local MAX_PASSWORD_BYTES = 1024
local LEGACY_IMAP, LEGACY_POP3 = 143, 110
local REDIS_BACKOFF = 2 -- seconds without Redis after a failure, as the module
local REDIS_LOG_INTERVAL = 30

-- ---------------------------------------------------------------------------------------------
-- crypto: libcrypto through the FFI (nginx is linked with it, so ffi.C finds the symbols)

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int RAND_bytes(unsigned char *buf, int num);
]]

local C = ffi.C
local md_buf = ffi.new("unsigned char[32]")
local md_len = ffi.new("unsigned int[1]")
local nonce_buf = ffi.new("unsigned char[16]")
local SHA256_MD -- EVP_sha256(), looked up in init

local function hmac_sha256(key, data)
    if C.HMAC(SHA256_MD, key, #key, data, #data, md_buf, md_len) == nil then
        return nil
    end
    return ffi.string(md_buf, 32)
end

local HEX = {}
for i = 0, 255 do
    HEX[char(i)] = format("%02x", i)
end

local function to_hex(s)
    return (s:gsub(".", HEX))
end

local function from_hex(s)
    return (s:gsub("..", function(h) return char(tonumber(h, 16)) end))
end

local B64URL = { ["+"] = "-", ["/"] = "_" }

local function base64url(s)
    return (ngx.encode_base64(s, true):gsub("[+/]", B64URL))
end

-- ---------------------------------------------------------------------------------------------
-- settings (filled by init in the master; the workers inherit them at fork)

local conf = {
    fail_delay = 3,
    max_attempts = 3,
    cache_ttl = 3600,
    ticket_ttl = 60,
    redis_timeout = 200, -- ms, connect/send/read
    redis_pool_size = 64,
    redis_idle = 60000, -- ms a pooled Redis connection may stay idle
}
local cache_secret, ticket_key, users, roles_dict
local redis_host, redis_port

-- per worker
local redis_down_until = 0
local redis_logged_at = 0

local function read_file(path, what)
    local f, err = io.open(path, "rb")
    if not f then
        error(format("mailauth.lua: %s %s: %s", what, path, err), 0)
    end
    local data = f:read("*a")
    f:close()
    return data
end

local function lines(text)
    return text:gmatch("[^\n]+")
end

local function trim(s)
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function load_key(path)
    local raw = read_file(path, "ticket_key")
    local t = trim(raw)
    if #t == 64 and not find(t, "[^0-9a-fA-F]") then
        return from_hex(t)
    end
    if #raw < 32 then
        error(format("mailauth.lua: ticket_key %s: too short (%d bytes): want 64 hex characters "
            .. "or at least 32 random bytes (mailctl ticket-key generate)", path, #raw), 0)
    end
    if #raw == 32 then
        return raw
    end
    C.SHA256(raw, #raw, md_buf)
    return ffi.string(md_buf, 32)
end

local function load_secret(path)
    local s = read_file(path, "cache_secret"):gsub("[\r\n]+$", "")
    if #s < 16 then
        error(format("mailauth.lua: cache_secret %s: the secret must be at least 16 bytes (got %d)",
            path, #s), 0)
    end
    return s
end

-- `mailctl roles export`: user,backend[,state]  ->  u:<user> = "<backend>\t<state>"
-- `mailctl roles backend list`: name ip imap=N pop3=N lmtp=N partner=P state=S
--                               ->  b:<name> = "<ip>\t<imap>\t<pop3>\t<state>\t<partner>"
local function load_roles(dict, roles_path, backends_path)
    dict:flush_all()
    local nb, nu = 0, 0
    for line in lines(read_file(backends_path, "backends")) do
        line = trim(line)
        if line ~= "" and sub(line, 1, 1) ~= "#" then
            local name, ip, rest = line:match("^(%S+)%s+(%S+)%s*(.*)$")
            local f = {}
            for k, v in (rest or ""):gmatch("(%w+)=(%S+)") do
                f[k] = v
            end
            if not name or not f.imap or not f.pop3 or not f.state then
                error(format("mailauth.lua: backends %s: bad line %q", backends_path, line), 0)
            end
            local ok, err = dict:safe_set("b:" .. name, concat({ ip, f.imap, f.pop3, f.state,
                f.partner or "-" }, "\t"))
            if not ok then
                error("mailauth.lua: lua_shared_dict for roles: " .. err, 0)
            end
            nb = nb + 1
        end
    end
    for line in lines(read_file(roles_path, "roles")) do
        line = trim(line)
        if line ~= "" and sub(line, 1, 1) ~= "#" then
            local user, backend, state = line:match("^([^,]+),([^,]+),?(.*)$")
            if not user then
                error(format("mailauth.lua: roles %s: want user,backend[,state], got %q",
                    roles_path, line), 0)
            end
            if state == "" then
                state = "active"
            end
            local ok, err = dict:safe_set("u:" .. lower(user), backend .. "\t" .. state)
            if not ok then
                error("mailauth.lua: lua_shared_dict for roles is too small: " .. err, 0)
            end
            nu = nu + 1
        end
    end
    return nu, nb
end

local function load_users(path)
    local map = {}
    for line in lines(read_file(path, "users")) do
        line = trim(line)
        if line ~= "" and sub(line, 1, 1) ~= "#" then
            local name, hash = line:match("^([^:]+):(.+)$")
            if not name then
                error(format("mailauth.lua: users %s: expected `user:hash`, got a line without ':'",
                    path), 0)
            end
            map[name] = hash
        end
    end
    return map
end

-- libargon2 (Debian: libargon2-1), loaded lazily: only a cache miss needs it.
local argon2
local function argon2_verify(encoded, pass)
    if argon2 == nil then
        local ok, lib = pcall(ffi.load, "libargon2.so.1")
        if not ok then
            argon2 = false
            ngx.log(ngx.ERR, "mailauth.lua: libargon2 not available (apt-get install libargon2-1): ",
                lib)
        else
            ffi.cdef [[
int argon2_verify(const char *encoded, const void *pwd, const size_t pwdlen, int type);
]]
            argon2 = lib
        end
    end
    if not argon2 then
        return nil, "no argon2"
    end
    local variant = encoded:match("^%$(argon2i?d?)%$")
    local t = ({ argon2d = 0, argon2i = 1, argon2id = 2 })[variant]
    if not t then
        return nil, "unsupported hash"
    end
    return argon2.argon2_verify(encoded, pass, #pass, t) == 0
end

--- Reads the configuration files and fills the roles dictionary. Call from init_by_lua (runs in
--- the nginx master, as root: secrets readable only by root are fine). Errors stop nginx with
--- a message naming the option and the file.
function _M.init(opts)
    for k, v in pairs(opts) do
        conf[k] = v
    end
    local ok, md = pcall(function() return C.EVP_sha256() end)
    if not ok or md == nil then
        error("mailauth.lua: libcrypto's EVP_sha256 not found through the FFI: " .. tostring(md), 0)
    end
    SHA256_MD = md
    roles_dict = ngx.shared[conf.roles_dict or "mailauth_roles"]
    if not roles_dict then
        error("mailauth.lua: lua_shared_dict " .. (conf.roles_dict or "mailauth_roles")
            .. " is not declared", 0)
    end
    if not conf.roles or not conf.backends then
        error("mailauth.lua: the roles and backends options are required", 0)
    end
    local nu, nb = load_roles(roles_dict, conf.roles, conf.backends)
    if not conf.ticket_key then
        error("mailauth.lua: the ticket_key option is required", 0)
    end
    ticket_key = load_key(conf.ticket_key)
    if conf.redis then
        redis_host, redis_port = conf.redis:match("^([^:]+):(%d+)$")
        if not redis_host then
            error(format("mailauth.lua: redis %q: want HOST:PORT", conf.redis), 0)
        end
        redis_port = tonumber(redis_port)
        if not conf.cache_secret then
            error("mailauth.lua: redis needs the cache_secret option", 0)
        end
    end
    if conf.cache_secret then
        cache_secret = load_secret(conf.cache_secret)
    end
    users = conf.users and load_users(conf.users) or {}
    ngx.log(ngx.NOTICE, format("mailauth.lua: %d users in %d backends, redis %s", nu, nb,
        conf.redis or "off"))
end

-- ---------------------------------------------------------------------------------------------
-- Redis: a minimal RESP2 client over a cosocket, connections kept in ngx_lua's pool

local function resp_command(args)
    local out = { "*", #args, "\r\n" }
    for _, a in ipairs(args) do
        a = tostring(a)
        out[#out + 1] = "$"
        out[#out + 1] = #a
        out[#out + 1] = "\r\n"
        out[#out + 1] = a
        out[#out + 1] = "\r\n"
    end
    return out
end

local function read_reply(sock)
    local line, err = sock:receive("*l")
    if not line then
        return nil, err
    end
    local kind, rest = sub(line, 1, 1), sub(line, 2)
    if kind == "$" then
        local n = tonumber(rest)
        if not n then
            return nil, "bad bulk length"
        end
        if n < 0 then
            return ngx.null
        end
        local data
        data, err = sock:receive(n + 2)
        if not data then
            return nil, err
        end
        return sub(data, 1, n)
    elseif kind == ":" then
        return tonumber(rest)
    elseif kind == "+" then
        return rest
    elseif kind == "-" then
        return nil, "error reply: " .. rest
    elseif kind == "*" then
        local n = tonumber(rest)
        if not n then
            return nil, "bad array length"
        end
        if n < 0 then
            return ngx.null
        end
        local arr = {}
        for i = 1, n do
            local v
            v, err = read_reply(sock)
            if v == nil then
                return nil, err
            end
            arr[i] = v
        end
        return arr
    end
    return nil, "unexpected reply " .. kind
end

--- Sends the commands (a list of argument lists) in one write and reads their replies.
local function redis(cmds)
    local sock = ngx.socket.tcp()
    local t = conf.redis_timeout
    sock:settimeouts(t, t, t)
    local ok, err = sock:connect(redis_host, redis_port)
    if not ok then
        return nil, "connect: " .. err
    end
    local req = {}
    for _, c in ipairs(cmds) do
        req[#req + 1] = resp_command(c)
    end
    ok, err = sock:send(req)
    if not ok then
        sock:close()
        return nil, "send: " .. err
    end
    local replies = {}
    for i = 1, #cmds do
        local v
        v, err = read_reply(sock)
        if v == nil then
            sock:close()
            return nil, err
        end
        replies[i] = v
    end
    sock:setkeepalive(conf.redis_idle, conf.redis_pool_size)
    return replies
end

local function redis_usable()
    return redis_host ~= nil and ngx.now() >= redis_down_until
end

local function redis_failed(err)
    local now = ngx.now()
    redis_down_until = now + REDIS_BACKOFF
    if now - redis_logged_at >= REDIS_LOG_INTERVAL then
        redis_logged_at = now
        ngx.log(ngx.WARN, "mailauth.lua: redis ", conf.redis, ": ", err,
            "; using the directory meanwhile")
    end
end

-- ---------------------------------------------------------------------------------------------
-- answers

local function answer(headers)
    local h = ngx.header
    for i = 1, #headers, 2 do
        h[headers[i]] = headers[i + 1]
    end
    h["Content-Length"] = 0
    return ngx.exit(ngx.HTTP_OK)
end

local function refuse(message, attempt)
    if attempt < conf.max_attempts then
        return answer({ "Auth-Status", message, "Auth-Wait", conf.fail_delay })
    end
    return answer({ "Auth-Status", message })
end

local function note(user, client, text)
    ngx.log(ngx.INFO, "mailauth.lua: login of ", format("%q", user), " from ", client or "?",
        " refused: ", text)
end

-- One value of a header: nil when absent, false when given twice.
local function single(headers, name)
    local v = headers[name]
    if type(v) == "table" then
        return false
    end
    return v
end

-- nginx escapes with ngx_escape_uri(NGX_ESCAPE_MAIL_AUTH): %XX only. A '%' without two hex
-- digits after it is invalid (nginx never sends one); ngx.unescape_uri would keep it.
local function unescape(v)
    if find(v, "%%[^%x]") or find(v, "%%%x[^%x]") or find(v, "%%%x?$") then
        return nil
    end
    return ngx.unescape_uri(v)
end

local function ticket(user)
    local expiry = tostring(math.floor(ngx.time()) + conf.ticket_ttl)
    if C.RAND_bytes(nonce_buf, 16) ~= 1 then
        return nil
    end
    local nonce = ffi.string(nonce_buf, 16)
    local tag = hmac_sha256(ticket_key, "MST1\0" .. user .. "\0" .. expiry .. "\0" .. nonce)
    if not tag then
        return nil
    end
    return concat({ "MST1.", base64url(user), ".", expiry, ".", to_hex(nonce), ".", base64url(tag) })
end

local function route(user, protocol, attempt, client)
    local role = roles_dict:get("u:" .. lower(user))
    if not role then
        note(user, client, "no role")
        return answer({ "Auth-Status", NO_MAILBOX })
    end
    local backend, state = role:match("^([^\t]*)\t(.*)$")
    local ip, imap, pop3
    if state == "moving" then
        note(user, client, "the mailbox is being moved")
        return refuse(MAILBOX_UNAVAILABLE, attempt)
    elseif sub(state, 1, 7) == "legacy:" then
        local address = sub(state, 8)
        local host, port = address:match("^(%d+%.%d+%.%d+%.%d+):(%d+)$")
        if not host then
            host, port = address:match("^%[([%x:]+)%]:(%d+)$")
        end
        if host then
            ip, imap, pop3 = host, port, port
        elseif address:match("^%d+%.%d+%.%d+%.%d+$") or address:match("^[%x:]+$") then
            ip, imap, pop3 = address, LEGACY_IMAP, LEGACY_POP3
        else
            note(user, client, "legacy address is not an IP address")
            return refuse(MAILBOX_UNAVAILABLE, attempt)
        end
    else
        local b = roles_dict:get("b:" .. backend)
        if not b then
            note(user, client, "backend " .. backend .. " missing")
            return answer({ "Auth-Status", NO_MAILBOX })
        end
        local bstate, partner
        ip, imap, pop3, bstate, partner = b:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
        if bstate == "failover" then
            local p = partner ~= "-" and roles_dict:get("b:" .. partner)
            local pstate
            if p then
                ip, imap, pop3, pstate = p:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t")
            end
            if pstate ~= "up" then
                note(user, client, "backend " .. backend .. " in failover, partner not up")
                return refuse(MAILBOX_UNAVAILABLE, attempt)
            end
        elseif bstate ~= "up" then
            note(user, client, "backend " .. backend .. " is " .. tostring(bstate))
            return refuse(MAILBOX_UNAVAILABLE, attempt)
        end
    end
    local port = protocol == "imap" and imap or protocol == "pop3" and pop3 or nil
    if not port then
        return refuse(NO_SUCH_SERVICE, attempt)
    end
    local t = ticket(user)
    if not t then
        ngx.log(ngx.ERR, "mailauth.lua: libcrypto failed to sign a ticket")
        return refuse(TEMP_FAILURE, attempt)
    end
    return answer({ "Auth-Status", "OK", "Auth-Server", ip, "Auth-Port", port, "Auth-Pass", t })
end

--- The content handler of the auth location.
function _M.handle()
    local method = ngx.req.get_method()
    if method ~= "GET" and method ~= "HEAD" then
        return ngx.exit(ngx.HTTP_NOT_ALLOWED)
    end
    local h = ngx.req.get_headers(64)
    local attempt_raw = single(h, "auth-login-attempt")
    local attempt = 1
    if attempt_raw then
        attempt = tonumber(attempt_raw:match("^%d+$") or "")
        if not attempt or attempt < 1 then
            attempt = 1
            ngx.log(ngx.ERR, "mailauth.lua: bad auth_http request: invalid header Auth-Login-Attempt")
            return refuse(TEMP_FAILURE, attempt)
        end
    elseif attempt_raw == false then
        ngx.log(ngx.ERR, "mailauth.lua: bad auth_http request: duplicate header Auth-Login-Attempt")
        return refuse(TEMP_FAILURE, attempt)
    end
    local auth_method = single(h, "auth-method")
    local user_raw = single(h, "auth-user")
    local pass_raw = single(h, "auth-pass")
    local protocol = single(h, "auth-protocol")
    local client = single(h, "client-ip")
    if not auth_method or not user_raw or not protocol or pass_raw == false or client == false then
        ngx.log(ngx.ERR, "mailauth.lua: bad auth_http request: missing or duplicate Auth-* header")
        return refuse(TEMP_FAILURE, attempt)
    end
    if protocol ~= "imap" and protocol ~= "pop3" and protocol ~= "smtp" then
        ngx.log(ngx.ERR, "mailauth.lua: bad auth_http request: invalid header Auth-Protocol")
        return refuse(TEMP_FAILURE, attempt)
    end
    if auth_method == "" or find(auth_method, "[^%w%-]") then
        ngx.log(ngx.ERR, "mailauth.lua: bad auth_http request: invalid header Auth-Method")
        return refuse(TEMP_FAILURE, attempt)
    end
    -- Client input: answered like a wrong password, never copied anywhere.
    local user = unescape(user_raw)
    if not user or user == "" or #user > MAX_USERNAME_BYTES or find(user, "[%z\1-\31\127]") then
        note("?", client, "invalid Auth-User")
        return refuse(INVALID_LOGIN, attempt)
    end
    local pass = unescape(pass_raw or "")
    if not pass or #pass > MAX_PASSWORD_BYTES or find(pass, "[%z\r\n]") then
        note("?", client, "invalid Auth-Pass")
        return refuse(INVALID_LOGIN, attempt)
    end
    if find(user, "[^%w%._@%+%-]") then
        note("?", client, "user name outside [A-Za-z0-9._@+-]")
        return refuse(INVALID_LOGIN, attempt)
    end
    if auth_method ~= "plain" and auth_method ~= "login" then
        note(user, client, "auth method " .. auth_method .. " needs the plain password")
        return refuse(INVALID_LOGIN, attempt)
    end
    if pass == "" then
        return refuse(INVALID_LOGIN, attempt)
    end

    -- Failure counters only for a well-formed client address (as the module).
    local fail_keys = {}
    if conf.lockout_failures then
        fail_keys[1] = "mailauth:fail:user:" .. user
        if client and (client:match("^%d+%.%d+%.%d+%.%d+$") or client:match("^[%x:]+$")) then
            fail_keys[2] = "mailauth:fail:ip:" .. client
        end
    end

    local redis_ok = false
    local credential, cred_key
    if cache_secret then
        credential = to_hex(hmac_sha256(cache_secret, user .. "\0" .. pass))
        cred_key = "mailauth:cred:" .. to_hex(hmac_sha256(cache_secret, user))
    end
    if redis_usable() then
        local mget = { "MGET" }
        for i = 1, #fail_keys do
            mget[i + 1] = fail_keys[i]
        end
        mget[#mget + 1] = cred_key
        local r, err = redis({ mget })
        if not r then
            redis_failed(err)
        else
            redis_ok = true
            local values = r[1]
            for i = 1, #fail_keys do
                local n = tonumber(values[i] ~= ngx.null and values[i] or 0) or 0
                if n >= conf.lockout_failures then
                    note(user, client, "locked out")
                    return refuse(LOCKED_OUT, attempt)
                end
            end
            if conf.cache_ttl > 0 and values[#values] == credential then
                return route(user, protocol, attempt, client)
            end
        end
    end

    -- The directory: the users file. Blocks this worker for the argon2 check.
    local hash = users[user]
    if not hash then
        note(user, client, "unknown user")
    else
        local valid, err = argon2_verify(hash, pass)
        if valid == nil then
            ngx.log(ngx.WARN, "mailauth.lua: directory: ", err)
            return refuse(TEMP_FAILURE, attempt)
        end
        if valid then
            if redis_ok and conf.cache_ttl > 0 then
                local _, serr = redis({ { "SETEX", cred_key, conf.cache_ttl, credential } })
                if serr then
                    redis_failed(serr)
                end
            end
            return route(user, protocol, attempt, client)
        end
        note(user, client, "wrong password")
    end
    if redis_ok and #fail_keys > 0 then
        local incr = {}
        for i, k in ipairs(fail_keys) do
            incr[i] = { "INCR", k }
        end
        local r, err = redis(incr)
        if not r then
            redis_failed(err)
        else
            local expire = {}
            for i, n in ipairs(r) do
                if n == 1 then
                    expire[#expire + 1] = { "EXPIRE", fail_keys[i], conf.lockout_window or 600 }
                end
            end
            if #expire > 0 then
                redis(expire)
            end
        end
    end
    return refuse(INVALID_LOGIN, attempt)
end

return _M
