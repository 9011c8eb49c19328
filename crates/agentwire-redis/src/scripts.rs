//! The Lua scripts the engine runs in Redis: each is atomic there, so one user's `seq`
//! order, history and fan-out stay consistent whichever node runs them.
//!
//! Keys of one user (`P` is the key prefix, `{U}` the user id as a Redis Cluster hash tag, so
//! a user's keys live on one shard): `P{U}:m`, a hash with the stream's epoch (`e`) and last
//! `seq` (`s`); `P{U}:l`, a list of the events held for replay, oldest first, each
//! `<stored-at ms>|<frame>`; and the channel `P{U}:c`, where the events of one APPEND are
//! published as one message, `<epoch>|<first seq>|` followed by `<bytes>|<frame>` for each
//! (consecutive seqs from the first). Both keys expire `max_age` after the stream's last event or
//! keep-alive.

/// Drops from the head of the list `l` the events stored `age` ms or more before `now`.
const EXPIRE_HEAD: &str = r"
local function expire_head(l, now, age)
  while true do
    local head = redis.call('LINDEX', l, 0)
    if not head then return end
    local stored = tonumber(string.match(head, '^(%d+)|'))
    if stored and now - stored >= age then redis.call('LPOP', l) else return end
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t[1] .. string.format('%06d', tonumber(t[2]))
end
";

/// APPEND: KEYS = meta, log; ARGV = epoch prefix, max events, max age ms, channel, then for
/// each event its frame head (through `"seq":`) and frame tail. Creates the stream if needed
/// (its epoch: the prefix and Redis's clock in µs), reserves the `n` seqs in one step (the
/// events get consecutive seqs, and no other event of the user lands between them), keeps
/// the frames, trims by count and age, refreshes the expiry, and publishes all of them as
/// one message `<epoch>|<first seq>|` followed by `<bytes>|<frame>` for each. Returns the
/// first seq (an integer reply: the cheapest to read back).
pub(crate) const APPEND: &str = r"
local m, l = KEYS[1], KEYS[2]
local now, micros = now_ms()
local epoch = redis.call('HGET', m, 'e')
if not epoch then
  epoch = ARGV[1] .. micros
  redis.call('HSET', m, 'e', epoch, 's', 0)
end
local max_events = tonumber(ARGV[2])
local age = tonumber(ARGV[3])
local n = math.floor((#ARGV - 4) / 2)
local first = redis.call('HINCRBY', m, 's', n) - n + 1
local message = {epoch, '|', first, '|'}
local entries = {}
-- Only the last max_events of the batch can stay in the list.
local keep_from = n - max_events
local stamp = now .. '|'
for i = 0, n - 1 do
  local frame = ARGV[5 + 2 * i] .. (first + i) .. ARGV[6 + 2 * i]
  local k = #message
  message[k + 1] = #frame
  message[k + 2] = '|'
  message[k + 3] = frame
  if i >= keep_from then
    entries[#entries + 1] = stamp .. frame
    if #entries == 512 then
      redis.call('RPUSH', l, unpack(entries))
      entries = {}
    end
  end
end
if max_events > 0 then
  if #entries > 0 then redis.call('RPUSH', l, unpack(entries)) end
  redis.call('LTRIM', l, -max_events, -1)
  expire_head(l, now, age)
  redis.call('PEXPIRE', l, age)
end
redis.call('PEXPIRE', m, age)
redis.call('PUBLISH', ARGV[4], table.concat(message))
return first
";

/// ATTACH: KEYS = meta, log; ARGV = epoch prefix, client epoch (or empty), since (or -1),
/// max age ms. Creates the stream if needed, refreshes its expiry, drops expired events, and
/// returns `{epoch, last seq, events held, frames}`: the frames of `since + 1 ..= last` when
/// the client's epoch is the stream's and they are all held, else none.
pub(crate) const ATTACH: &str = r"
local m, l = KEYS[1], KEYS[2]
local now, micros = now_ms()
local age = tonumber(ARGV[4])
local epoch = redis.call('HGET', m, 'e')
if not epoch then
  epoch = ARGV[1] .. micros
  redis.call('HSET', m, 'e', epoch, 's', 0)
end
redis.call('PEXPIRE', m, age)
local last = tonumber(redis.call('HGET', m, 's') or '0')
expire_head(l, now, age)
local len = redis.call('LLEN', l)
local first = last - len + 1
local since = tonumber(ARGV[3])
local frames = {}
if ARGV[2] == epoch and since >= 0 and since < last and since + 1 >= first then
  frames = redis.call('LRANGE', l, since + 1 - first, -1)
end
return {epoch, last, len, frames}
";

/// KEEPALIVE: KEYS = meta, log; ARGV = epoch, last seq this node's connections got, max age
/// ms. Keeps a stream that this node's connections follow: restores it (same epoch, `seq`
/// going on, nothing held) when Redis lost it, raises its last `seq` to what the node saw,
/// and refreshes the expiry. Returns `{epoch, last seq}` as they are now.
pub(crate) const KEEPALIVE: &str = r"
local m, l = KEYS[1], KEYS[2]
local age = tonumber(ARGV[3])
local epoch = redis.call('HGET', m, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', m, 'e', epoch, 's', ARGV[2])
elseif epoch == ARGV[1] then
  local last = tonumber(redis.call('HGET', m, 's') or '0')
  if last < tonumber(ARGV[2]) then redis.call('HSET', m, 's', ARGV[2]) end
end
redis.call('PEXPIRE', m, age)
redis.call('PEXPIRE', l, age)
return {epoch, tonumber(redis.call('HGET', m, 's') or '0')}
";

/// TOUCH: KEYS = meta, log; ARGV = max age ms. The user's last connection on a node left:
/// the stream is kept `max_age` from now for the client to resume.
pub(crate) const TOUCH: &str = r"
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
";

/// A script with the shared helpers in front, and its SHA1 for EVALSHA.
pub(crate) struct Script {
    pub(crate) code: String,
    pub(crate) hash: String,
}

impl Script {
    pub(crate) fn new(body: &str) -> Script {
        let code = format!("{EXPIRE_HEAD}{body}");
        let hash = redis::Script::new(&code).get_hash().to_owned();
        Script { code, hash }
    }
}

/// Every script, loaded on each (re)connection.
pub(crate) struct Scripts {
    pub(crate) append: Script,
    pub(crate) attach: Script,
    pub(crate) keepalive: Script,
    pub(crate) touch: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            append: Script::new(APPEND),
            attach: Script::new(ATTACH),
            keepalive: Script::new(KEEPALIVE),
            touch: Script::new(TOUCH),
        }
    }

    pub(crate) fn all(&self) -> [&Script; 4] {
        [&self.append, &self.attach, &self.keepalive, &self.touch]
    }
}
