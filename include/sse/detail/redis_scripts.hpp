#pragma once

// The Lua scripts of sse::redis::backend and the shape of its keys and ids.
//
// Keys, for a prefix P (default "sse:") and a topic T:
//   P state       hash: epoch (ms since 1970 when the data set began), seq (the global counter),
//                 ms (the newest id's time); one per Redis, never expires
//   P{T}          stream: the topic's history, entries `<ms>-<seq>` with one field `b` (the
//                 frame without its id line); also the topic's pub/sub channel
//   P{T}:meta     hash: last (the topic's newest id), n and bytes (kept), first (the oldest
//                 kept entry's ms), trimmed (the newest id dropped), exp (expiry last set)
// Ids are `<ms>-<seq>`: seq counts every publish on this Redis, so ids of different topics
// compare by seq and one order holds across topics; ms never goes back, so a stream id and the
// event id are the same string.

#include <sse/detail/event_id.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sse::detail::redis {

/// Assigns the next id, appends to the topic's stream within its bounds and publishes, in one
/// atomic step. KEYS: state, stream, meta. ARGV: body, max_events, max_bytes, max_age_ms (-1:
/// none), ttl_ms (0: none; the keys then live at least this long after the newest publish,
/// their expiry pushed back a quarter of it at a time so most publishes skip PEXPIRE).
/// The meta hash counts entries and bytes and knows the oldest entry's time, so a publish
/// that trims nothing reads nothing of the stream. Returns {epoch, id}. The message published on the stream's name is
/// "epoch\nid\nprev\nbody", prev being the topic's id before this one ("0-0" for none).
inline constexpr std::string_view publish_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'ms')
local epoch = st[1] or string.format('%.0f', now)
local seq = tonumber(st[2] or '0') + 1
local ms = math.max(now, tonumber(st[3] or '0'))
redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', string.format('%.0f', seq),
           'ms', string.format('%.0f', ms))
local id = string.format('%.0f-%.0f', ms, seq)
local meta = redis.call('HMGET', KEYS[3], 'last', 'bytes', 'n', 'first', 'exp')
local prev = meta[1] or '0-0'
local bytes = tonumber(meta[2] or '0')
local n = tonumber(meta[3] or '0')
local first = tonumber(meta[4] or '0')
local exp = tonumber(meta[5] or '0')
local body = ARGV[1]
local maxn, maxb = tonumber(ARGV[2]), tonumber(ARGV[3])
local maxage, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local kept = maxn > 0 and #body <= maxb
if kept then
  redis.call('XADD', KEYS[2], id, 'b', body)
  bytes = bytes + #body
  n = n + 1
  if n == 1 then first = ms end
end
local trimmed = nil
for _ = 1, 128 do
  if n == 0 or (n <= maxn and bytes <= maxb and (maxage < 0 or first >= now - maxage)) then
    break
  end
  local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 2)
  local e = old[1]
  if not e then
    n, bytes, first = 0, 0, 0
    break
  end
  bytes = bytes - #e[2][2]
  redis.call('XDEL', KEYS[2], e[1])
  trimmed = e[1]
  n = n - 1
  first = old[2] and tonumber(string.match(old[2][1], '^%d+')) or 0
end
if not kept then trimmed = id end
local m = {'last', id, 'bytes', string.format('%.0f', bytes), 'n', string.format('%.0f', n),
           'first', string.format('%.0f', first)}
if trimmed then
  m[#m + 1] = 'trimmed'
  m[#m + 1] = trimmed
end
if ttl > 0 and now - exp > ttl / 4 then
  m[#m + 1] = 'exp'
  m[#m + 1] = string.format('%.0f', now)
end
redis.call('HSET', KEYS[3], unpack(m))
if ttl > 0 and now - exp > ttl / 4 then
  redis.call('PEXPIRE', KEYS[2], ttl + ttl / 4)
  redis.call('PEXPIRE', KEYS[3], ttl + ttl / 4)
end
redis.call('PUBLISH', KEYS[2], epoch .. '\n' .. id .. '\n' .. prev .. '\n' .. body)
return {epoch, id}
)lua";

/// Reads a topic's entries after an id with the state they are consistent with, and (if a
/// marker channel is given) publishes the position read at on it, so that the reader knows
/// when its pub/sub connection has caught up with this read. KEYS: state, stream, meta.
/// ARGV: after, count (0: no entries), marker channel ("" for none). Returns {epoch ("" for
/// an empty data set), position "<ms>-<seq>", last, trimmed, now_ms, entries}.
inline constexpr std::string_view read_script = R"lua(
local st = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'ms')
local meta = redis.call('HMGET', KEYS[3], 'last', 'trimmed')
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local entries = {}
if tonumber(ARGV[2]) > 0 then
  entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
local pos = (st[3] or '0') .. '-' .. (st[2] or '0')
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], pos) end
return {st[1] or '', pos, meta[1] or '', meta[2] or '', now, entries}
)lua";

/// An id `<ms>-<seq>`, compared by seq (the global counter).
struct stream_id {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;
  std::string text() const { return std::to_string(ms) + "-" + std::to_string(seq); }
};

/// The same shape as the broker's own ids.
inline std::optional<stream_id> parse_stream_id(std::string_view s) noexcept {
  if (auto b = sse::detail::parse_broker_id(s))
    return stream_id{b->epoch, b->seq};
  return std::nullopt;
}

} // namespace sse::detail::redis
