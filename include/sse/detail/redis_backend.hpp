#pragma once

// The engine of sse::redis::backend. Everything below runs on one strand.
//
// Each topic this node listens to has a feed: its channel is subscribed, and the feed hands
// each event to the local broker once, in the topic's order, checking every message's `prev`
// against the last id it handled. A gap (a message lost with a connection) or a reconnect makes
// the feed read the topic's stream from its last id ("catch-up") before going on.
//
// One position `pos_` orders it all: Redis runs scripts one at a time and sends a connection's
// pub/sub messages in that order, so once a message (or a marker a read script published) with
// counter S has arrived, every event up to S of every channel subscribed before it has arrived
// too. A feed is *synced* once it is live and `pos_` has reached the position of its last read:
// then the node has handed over every event of its topic up to `pos_` and will hand over every
// later one. A subscription is made only when all its topics are synced, with a replay of
// exactly the events after its last id up to `pos_` (from Redis, plus what feeds delivered while
// the replay was read), so nothing is missed or doubled and the client's last id always means
// "everything up to here".

#include <sse/broker.hpp>
#include <sse/detail/redis_scripts.hpp>
#include <sse/format.hpp>
#include <sse/frame.hpp>
#include <sse/redis.hpp>
#include <sse/redis/backend_options.hpp>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace sse::detail::redis {

/// One event of a replay.
struct replay_entry {
  std::uint64_t seq = 0;
  std::uint64_t ms = 0;
  sse::frame message;
};

/// `id: <id>\n` then the stored frame.
inline sse::frame frame_with_id(std::string_view id, std::string_view body) {
  std::string s;
  s.reserve(id.size() + 5 + body.size());
  s.append("id: ").append(id).push_back('\n');
  s.append(body);
  return sse::frame(std::string_view(s));
}

/// An `async_subscribe` in progress; the public side implements `complete`.
class subscribe_op {
public:
  virtual ~subscribe_op() = default;
  virtual void complete(std::error_code ec, sse::subscription sub) = 0;

  std::vector<std::string> topics; ///< sorted, unique
  sse::subscribe_options options;
  bool id_given = false;            ///< a Last-Event-ID came (placeable or not)
  std::optional<stream_id> after;   ///< it, when it has the shape of our ids
  bool done = false;

  // The replay being read.
  enum class stage { waiting, queued, reading, read } st = stage::waiting;
  struct topic_read {
    std::string from;   ///< read after this id
    std::uint64_t covered = 0;
    stream_id trimmed;  ///< the newest id the stream dropped
    bool has_meta = false;
    std::uint64_t now = 0;
    bool finished = false;
    std::vector<replay_entry> entries;
  };
  std::map<std::string, topic_read, std::less<>> reads;
  std::size_t reads_pending = 0;
  std::string epoch;
  bool epoch_known = false;
  std::vector<replay_entry> observed; ///< delivered by feeds while the replay was read

  bool wants_replay() const { return id_given || options.replay_history; }
};

class backend_engine : public std::enable_shared_from_this<backend_engine> {
  using clock = std::chrono::steady_clock;
  using strand_type = asio::strand<asio::any_io_executor>;

public:
  backend_engine(asio::any_io_executor ex, sse::broker& broker, sse::redis::backend_options o)
      : strand_(asio::make_strand(ex)), broker_(broker), options_(std::move(o)),
        commands_(ex, options_.redis), pubsub_(ex, options_.redis), sweep_(strand_) {
    if (options_.history.max_age < std::chrono::milliseconds::zero())
      throw std::invalid_argument(
          "sse::redis::backend: history_limits::max_age must not be negative");
    if (options_.read_batch == 0 || options_.max_concurrent_replays == 0)
      throw std::invalid_argument(
          "sse::redis::backend: read_batch and max_concurrent_replays must be at least 1");
    std::random_device rd;
    node_channel_ = options_.prefix + "node:" + std::to_string(rd()) + std::to_string(rd());
    state_key_ = options_.prefix + "state";
    // Age bounds beyond a century mean "never" (and must not overflow Lua's doubles).
    auto const century = std::chrono::hours(24 * 365 * 100);
    if (options_.history.max_age < century) {
      max_age_ms_ = options_.history.max_age.count();
      ttl_ms_ = max_age_ms_ + 60000; // a topic's keys outlive its newest entry by a minute
    }
  }

  sse::broker& broker() noexcept { return broker_; }

  void start() {
    auto self = shared_from_this();
    std::weak_ptr<backend_engine> weak = self;
    commands_.set_state_handler([weak](sse::redis::state_event const& e) {
      if (auto s = weak.lock())
        asio::post(s->strand_, [s, e] { s->on_commands_state(e); });
    });
    pubsub_.set_state_handler([weak](sse::redis::state_event const& e) {
      if (auto s = weak.lock())
        asio::post(s->strand_, [s, e] { s->on_pubsub_state(e); });
    });
    pubsub_.set_message_handler([weak](std::string_view channel, std::string_view message) {
      if (auto s = weak.lock())
        asio::post(s->strand_, [s, c = std::string(channel), m = std::string(message)] {
          s->on_message(c, m);
        });
    });
    pubsub_.subscribe(node_channel_);
    commands_.start();
    pubsub_.start();
    broker_.set_publisher([weak](std::string_view topic, sse::frame const& f, std::string_view id) {
      if (auto s = weak.lock())
        s->publish_from_hook(topic, f, id);
    });
    asio::post(strand_, [self] { self->arm_sweep(); });
  }

  /// Stops for good: pending subscribes fail, the broker publishes locally again.
  void close() {
    if (closed_.exchange(true))
      return;
    broker_.set_publisher(nullptr);
    commands_.close();
    pubsub_.close();
    auto self = shared_from_this();
    asio::post(strand_, [self] {
      self->sweep_.cancel();
      auto ops = std::move(self->ops_);
      for (auto& op : ops)
        self->finish(*op, asio::error::operation_aborted);
      self->feeds_.clear();
    });
  }

  sse::redis::backend_stats stats() const {
    sse::redis::backend_stats st;
    st.published = published_.load(std::memory_order_relaxed);
    st.publish_failed = publish_failed_.load(std::memory_order_relaxed);
    st.received = received_.load(std::memory_order_relaxed);
    st.catch_ups = catch_ups_.load(std::memory_order_relaxed);
    st.resets = resets_.load(std::memory_order_relaxed);
    st.subscribes = subscribes_.load(std::memory_order_relaxed);
    st.subscribe_failed = subscribe_failed_.load(std::memory_order_relaxed);
    st.topics = topics_.load(std::memory_order_relaxed);
    st.pending_subscribes = pending_.load(std::memory_order_relaxed);
    return st;
  }

  sse::redis::connection_state state() const noexcept {
    auto const a = commands_.state(), b = pubsub_.state();
    if (a == b)
      return a;
    if (a == sse::redis::connection_state::closed || b == sse::redis::connection_state::closed)
      return sse::redis::connection_state::closed;
    if (a == sse::redis::connection_state::disconnected ||
        b == sse::redis::connection_state::disconnected)
      return sse::redis::connection_state::disconnected;
    return sse::redis::connection_state::connecting;
  }

  std::string channel_of(std::string_view topic) const {
    std::string c;
    c.reserve(options_.prefix.size() + topic.size() + 2);
    c.append(options_.prefix).append("{").append(topic).append("}");
    return c;
  }

  /// The bytes a node will deliver for `body`: the id line (at most 46 bytes) plus `body`.
  static constexpr std::size_t id_line_max = 46;

  /// Runs the publish script; `done(ec, id)` runs on the connection's executor.
  template <class Done>
  void publish(std::string_view topic, std::string body, Done done) {
    std::string const stream = channel_of(topic);
    std::vector<std::string> args{
        state_key_,
        stream,
        stream + ":meta",
        std::move(body),
        std::to_string(options_.history.max_events),
        std::to_string(options_.history.max_bytes),
        std::to_string(max_age_ms_),
        std::to_string(ttl_ms_)};
    auto self = shared_from_this();
    eval(script::publish, std::move(args),
         [self, done = std::move(done)](std::error_code ec, sse::redis::reply r) mutable {
           std::string id;
           if (!ec && (!r.is_array() || r.size() != 2 || !r[1].is_string()))
             ec = sse::redis::errc::protocol_error;
           if (!ec)
             id = r[1].str();
           (ec ? self->publish_failed_ : self->published_).fetch_add(1, std::memory_order_relaxed);
           done(ec, std::move(id));
         });
  }

  /// Takes an `async_subscribe` (from any thread).
  void submit(std::shared_ptr<subscribe_op> op) {
    pending_.fetch_add(1, std::memory_order_relaxed);
    auto self = shared_from_this();
    asio::post(strand_, [self, op = std::move(op)]() mutable { self->admit(std::move(op)); });
  }

private:
  enum class script { publish, read };

  struct held_message {
    stream_id id;
    std::uint64_t prev = 0;
    std::string text, body;
  };

  struct feed {
    enum class phase { starting, reading, live, stale } ph = phase::starting;
    bool started = false;      ///< its first read came back: `last` is known
    std::uint64_t last = 0;    ///< seq of the newest event of the topic handled here
    std::string last_text = "0-0"; ///< and its whole id, where a catch-up reads from
    std::uint64_t sync_at = 0; ///< the position of its last read
    std::uint64_t gen = 0;     ///< bumped to ignore a read that is out of date
    std::vector<held_message> held; ///< arrived while reading, handed over after the read
    std::size_t held_bytes = 0;
    bool overflowed = false;   ///< more arrived than `max_held_bytes`: read again instead
    std::vector<subscribe_op*> observers; ///< subscribes reading a replay of this topic
    clock::time_point idle_since{};
  };
  using feed_map = std::map<std::string, feed, std::less<>>;

  // ---- Scripts ----

  /// EVALSHA once Redis has the script, EVAL until then (and again after NOSCRIPT: a Redis
  /// restart forgets scripts).
  template <class Done>
  void eval(script which, std::vector<std::string> args, Done done, bool retried = false) {
    std::string_view const text =
        which == script::publish ? publish_script : read_script;
    std::string sha;
    {
      std::lock_guard<std::mutex> lk(sha_mutex_);
      sha = which == script::publish ? publish_sha_ : read_sha_;
    }
    std::size_t const nkeys = 3;
    std::vector<std::string> cmd;
    cmd.reserve(args.size() + 3);
    if (sha.empty()) {
      cmd.emplace_back("EVAL");
      cmd.emplace_back(text);
    } else {
      cmd.emplace_back("EVALSHA");
      cmd.push_back(sha);
    }
    cmd.push_back(std::to_string(nkeys));
    auto self = shared_from_this();
    auto keep = retried ? std::vector<std::string>() : args; // for a retry after NOSCRIPT
    for (auto& a : args)
      cmd.push_back(std::move(a));
    bool const by_sha = !sha.empty();
    commands_.async_command(
        std::move(cmd), [self, which, by_sha, retried, keep = std::move(keep),
                         done = std::move(done)](std::error_code ec, sse::redis::reply r) mutable {
          if (ec == sse::redis::errc::reply_error && by_sha && !retried &&
              r.str().rfind("NOSCRIPT", 0) == 0) {
            self->forget_sha(which);
            self->eval(which, std::move(keep), std::move(done), true);
            return;
          }
          if (!ec && !by_sha)
            self->learn_sha(which);
          done(ec, std::move(r));
        });
  }

  void learn_sha(script which) {
    auto self = shared_from_this();
    std::string_view const text = which == script::publish ? publish_script : read_script;
    {
      std::lock_guard<std::mutex> lk(sha_mutex_);
      if (loading_[static_cast<int>(which)])
        return;
      loading_[static_cast<int>(which)] = true;
    }
    commands_.async_command({"SCRIPT", "LOAD", std::string(text)},
                            [self, which](std::error_code ec, sse::redis::reply r) {
                              std::lock_guard<std::mutex> lk(self->sha_mutex_);
                              self->loading_[static_cast<int>(which)] = false;
                              if (!ec && r.is_string())
                                (which == script::publish ? self->publish_sha_ : self->read_sha_) =
                                    r.str();
                            });
  }

  void forget_sha(script which) {
    std::lock_guard<std::mutex> lk(sha_mutex_);
    (which == script::publish ? publish_sha_ : read_sha_).clear();
  }

  /// What the read script answers.
  struct read_result {
    std::string epoch;
    stream_id pos;
    std::string pos_text;
    std::string last;
    stream_id trimmed;
    bool has_meta = false;
    std::uint64_t now = 0;
    std::vector<std::pair<std::string, std::string>> entries; ///< id, body
    std::size_t read = 0;  ///< entries Redis sent (some may be left out, see parse_read)
    std::string read_last; ///< the last one's id: where a further read starts
  };

  static bool parse_read(sse::redis::reply const& r, read_result& out) {
    if (!r.is_array() || r.size() != 6 || !r[5].is_array())
      return false;
    for (std::size_t i = 0; i < 5; ++i)
      if (!r[i].is_string())
        return false;
    out.epoch = r[0].str();
    auto pos = parse_stream_id(r[1].str());
    if (!pos)
      return false;
    out.pos = *pos;
    out.pos_text = r[1].str();
    out.last = r[2].str();
    out.has_meta = !out.last.empty();
    if (auto t = parse_stream_id(r[3].str()))
      out.trimmed = *t;
    sse::detail::parse_u64(r[4].str(), out.now);
    std::uint64_t epoch = 0;
    sse::detail::parse_u64(out.epoch, epoch);
    for (auto const& e : r[5].elements()) {
      // [id, [field, value, ...]]; our entries have the one field "b"
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_array())
        return false;
      std::string body;
      auto const& fields = e[1].elements();
      for (std::size_t i = 0; i + 1 < fields.size(); i += 2)
        if (fields[i].str() == "b")
          body = fields[i + 1].str();
      // Entries older than the data set (its `state` key was lost, the streams were not)
      // belong to no id of this epoch: never replayed.
      ++out.read;
      out.read_last = e[0].str();
      auto const id = parse_stream_id(e[0].str());
      if (id && id->ms >= epoch)
        out.entries.emplace_back(e[0].str(), std::move(body));
    }
    return true;
  }

  /// Reads `topic` after `after`; `done(ec, result)` runs on the strand.
  template <class Done>
  void read(std::string_view topic, std::string const& after, std::size_t count, bool marker,
            Done done) {
    std::string const stream = channel_of(topic);
    std::vector<std::string> args{state_key_, stream, stream + ":meta", after,
                                  std::to_string(count), marker ? node_channel_ : std::string()};
    auto self = shared_from_this();
    eval(script::read, std::move(args),
         [self, done = std::move(done)](std::error_code ec, sse::redis::reply r) mutable {
           read_result res;
           if (!ec && !parse_read(r, res))
             ec = sse::redis::errc::protocol_error;
           asio::post(self->strand_, [done = std::move(done), ec, res = std::move(res)]() mutable {
             done(ec, std::move(res));
           });
         });
  }

  // ---- Publishing through the broker's hook ----

  void publish_from_hook(std::string_view topic, sse::frame const& f, std::string_view id) {
    std::string body(f.view());
    if (!id.empty()) { // the broker stamped or kept an id: Redis gives the one that counts
      std::string const line = "id: " + std::string(id) + "\n";
      auto at = body.rfind(line);
      if (at != std::string::npos && (at == 0 || body[at - 1] == '\n'))
        body.erase(at, line.size());
    }
    publish(topic, std::move(body), [](std::error_code, std::string) {});
  }

  // ---- Connection states ----

  /// Both connections up, as last told on the strand.
  bool usable() const {
    return commands_state_ == sse::redis::connection_state::connected &&
           pubsub_state_ == sse::redis::connection_state::connected;
  }
  /// Either connection down (not merely connecting): a subscribe that needs Redis fails now.
  bool down() const {
    auto is_down = [](sse::redis::connection_state s) {
      return s == sse::redis::connection_state::disconnected ||
             s == sse::redis::connection_state::closed;
    };
    return is_down(commands_state_) || is_down(pubsub_state_);
  }

  void on_commands_state(sse::redis::state_event const& e) {
    commands_state_ = e.state;
    if (e.state == sse::redis::connection_state::connected)
      resync_stale();
  }

  void on_pubsub_state(sse::redis::state_event const& e) {
    using cs = sse::redis::connection_state;
    pubsub_state_ = e.state;
    if (e.state == cs::connected) {
      resync_stale();
      return;
    }
    if (e.state != cs::disconnected && e.state != cs::closed)
      return;
    // Messages may have been lost with the connection: every feed catches up once it is back.
    for (auto& [name, f] : feeds_) {
      f.ph = feed::phase::stale;
      ++f.gen;
    }
    std::error_code ec = e.error ? e.error : make_error_code(sse::redis::errc::connection_lost);
    fail_ops_if([](subscribe_op const&) { return true; }, ec);
  }

  void resync_stale() {
    if (closed_ || !usable())
      return;
    std::vector<std::string> stale;
    for (auto& [name, f] : feeds_)
      if (f.ph == feed::phase::stale)
        stale.push_back(name);
    if (!stale.empty())
      sync_feeds(std::move(stale));
  }

  // ---- Feeds ----

  feed& ensure_feed(std::string const& topic) {
    auto it = feeds_.find(topic);
    if (it != feeds_.end())
      return it->second;
    it = feeds_.emplace(topic, feed{}).first;
    topics_.store(feeds_.size(), std::memory_order_relaxed);
    auto self = shared_from_this();
    auto const gen = it->second.gen;
    pubsub_.async_subscribe(channel_of(topic), [self, topic, gen](std::error_code ec) {
      asio::post(self->strand_, [self, topic, gen, ec] { self->on_subscribed(topic, gen, ec); });
    });
    return it->second;
  }

  void on_subscribed(std::string const& topic, std::uint64_t gen, std::error_code ec) {
    auto it = feeds_.find(topic);
    if (it == feeds_.end() || it->second.gen != gen || it->second.ph != feed::phase::starting)
      return;
    if (ec) {
      // Still wanted: subscribed again on reconnect, then caught up.
      it->second.ph = feed::phase::stale;
      fail_ops_if([&](subscribe_op const& op) { return has_topic(op, topic); }, ec);
      return;
    }
    sync_feeds({topic});
  }

  /// Reads what they missed of several feeds together (a feed's first read only learns where
  /// its topic stands), with a marker on the node's channel for each read. Messages that
  /// arrive meanwhile are held. Once every read is back, the entries are handed over merged in
  /// id order (so a stream of several topics keeps one order through a reconnect), then the
  /// held messages after them, and the feeds go live. A batch that came back full makes the
  /// round go again from where it got to.
  void sync_feeds(std::vector<std::string> topics) {
    auto r = std::make_shared<sync_round>();
    auto self = shared_from_this();
    for (auto const& t : topics) {
      feed& f = feeds_.at(t);
      if (f.ph != feed::phase::reading) { // joining a round: from now on messages are held
        f.held.clear();
        f.held_bytes = 0;
        f.overflowed = false;
        if (f.started)
          catch_ups_.fetch_add(1, std::memory_order_relaxed);
      }
      f.ph = feed::phase::reading;
      r->topics.push_back({t, ++f.gen});
    }
    r->pending = r->topics.size();
    for (auto const& [t, gen] : r->topics) {
      feed const& f = feeds_.at(t);
      read(t, f.started ? f.last_text : std::string("0-0"), f.started ? options_.read_batch : 0,
           true, [self, r, t = t](std::error_code ec, read_result res) {
             self->on_round_read(r, t, ec, std::move(res));
           });
    }
  }

  struct sync_round {
    std::vector<std::pair<std::string, std::uint64_t>> topics; ///< and each feed's gen
    std::map<std::string, read_result, std::less<>> results;
    std::size_t pending = 0;
  };

  /// The feed `t`, if it is still in the round that gave it `gen` (not restarted or left).
  feed* round_feed(std::string const& t, std::uint64_t gen) {
    auto it = feeds_.find(t);
    return it == feeds_.end() || it->second.gen != gen ? nullptr : &it->second;
  }

  void on_round_read(std::shared_ptr<sync_round> const& r, std::string const& t,
                     std::error_code ec, read_result res) {
    if (ec) {
      for (auto const& [name, gen] : r->topics)
        if (name == t)
          if (feed* f = round_feed(name, gen)) {
            f->ph = feed::phase::stale; // tried again once both connections are up
            ++f->gen;
          }
      fail_ops_if([&](subscribe_op const& op) { return has_topic(op, t); }, ec);
    } else {
      r->results.insert_or_assign(t, std::move(res));
    }
    if (--r->pending == 0)
      finish_round(*r);
  }

  void finish_round(sync_round& r) {
    for (auto const& [t, res] : r.results)
      if (!check_epoch(res.epoch))
        return; // data lost: every feed starts over
    struct item {
      std::uint64_t seq;
      std::string const* topic;
      std::string_view id, body;
    };
    std::vector<item> items;
    std::uint64_t cutoff = static_cast<std::uint64_t>(-1); // past it, not every read got there
    bool again = false;
    std::vector<std::pair<std::string, std::uint64_t>> mine; // the feeds still in this round
    for (auto const& [t, gen] : r.topics) {
      feed* f = round_feed(t, gen);
      auto it = r.results.find(t);
      if (!f || it == r.results.end())
        continue;
      mine.push_back({t, gen});
      read_result const& res = it->second;
      if (!f->started) {
        f->started = true;
        f->last = res.has_meta ? parse_stream_id(res.last).value_or(stream_id{}).seq : 0;
        f->last_text = res.has_meta ? res.last : std::string("0-0");
        continue;
      }
      if (res.read >= options_.read_batch)
        if (auto l = parse_stream_id(res.read_last)) {
          cutoff = std::min(cutoff, l->seq);
          again = true;
        }
      if (res.trimmed.seq > f->last && has_listeners(t))
        deliver_reset(t, "too-old"); // what it missed is no longer in Redis
      for (auto const& [id, body] : res.entries)
        if (auto sid = parse_stream_id(id))
          if (sid->seq > f->last)
            items.push_back({sid->seq, &t, id, body});
    }
    std::sort(items.begin(), items.end(),
              [](item const& a, item const& b) { return a.seq < b.seq; });
    for (auto const& e : items) {
      if (e.seq > cutoff)
        break;
      auto it = feeds_.find(*e.topic);
      deliver(it->first, it->second, {parse_stream_id(e.id)->ms, e.seq}, e.id, e.body);
    }
    if (again) { // read on from where every feed got to
      std::vector<std::string> topics;
      for (auto const& [t, gen] : mine)
        topics.push_back(t);
      sync_feeds(std::move(topics));
      return;
    }
    // Everything up to each read's position is handed over: now what was held, merged.
    struct held_item {
      std::uint64_t seq;
      std::string const* topic;
      held_message* m;
    };
    std::vector<held_item> held;
    std::vector<std::string> reread;
    for (auto const& [t, gen] : mine) {
      feed& f = feeds_.at(t);
      read_result const& res = r.results.at(t);
      if (res.trimmed.seq > f.last) {
        f.last = res.trimmed.seq;
        f.last_text = res.trimmed.text();
      }
      f.sync_at = res.pos.seq;
      if (f.overflowed) { // too much arrived meanwhile to hold: read it instead
        f.overflowed = false;
        reread.push_back(t);
        continue;
      }
      for (auto& m : f.held)
        if (m.id.seq > f.sync_at)
          held.push_back({m.id.seq, &t, &m});
    }
    std::sort(held.begin(), held.end(),
              [](held_item const& a, held_item const& b) { return a.seq < b.seq; });
    std::vector<std::string> gaps;
    for (auto const& h : held) {
      auto it = feeds_.find(*h.topic);
      feed& f = it->second;
      if (f.ph != feed::phase::reading || h.seq <= f.last)
        continue;
      if (h.m->prev != f.last) { // cannot happen on one connection; read rather than guess
        f.ph = feed::phase::stale;
        gaps.push_back(it->first);
        continue;
      }
      deliver(it->first, f, h.m->id, h.m->text, h.m->body);
    }
    for (auto const& [t, gen] : mine) {
      feed& f = feeds_.at(t);
      f.held.clear();
      f.held_bytes = 0;
      if (f.ph != feed::phase::reading ||
          std::find(reread.begin(), reread.end(), t) != reread.end())
        continue;
      f.ph = feed::phase::live;
      if (f.sync_at > pos_)
        ++syncing_;
    }
    reread.insert(reread.end(), gaps.begin(), gaps.end());
    if (!reread.empty())
      sync_feeds(std::move(reread));
    advance_all();
  }

  bool synced(feed const& f) const { return f.ph == feed::phase::live && pos_ >= f.sync_at; }

  void on_message(std::string const& channel, std::string const& message) {
    if (closed_)
      return;
    if (channel == node_channel_) { // a read's marker: "<ms>-<seq>"
      if (auto p = parse_stream_id(message))
        advance_pos(*p, message);
      return;
    }
    // "epoch\nid\nprev\nbody"
    auto const a = message.find('\n');
    auto const b = a == std::string::npos ? a : message.find('\n', a + 1);
    auto const c = b == std::string::npos ? b : message.find('\n', b + 1);
    if (c == std::string::npos)
      return;
    std::string_view const m(message);
    auto const id_text = m.substr(a + 1, b - a - 1);
    auto const id = parse_stream_id(id_text);
    auto const prev = parse_stream_id(m.substr(b + 1, c - b - 1));
    if (!id || !prev)
      return;
    if (!check_epoch(std::string(m.substr(0, a))))
      return;
    received_.fetch_add(1, std::memory_order_relaxed);
    std::string_view const topic = topic_of(channel);
    auto it = feeds_.find(topic);
    if (it != feeds_.end()) {
      feed& f = it->second;
      if (f.ph == feed::phase::reading) {
        auto const body = m.substr(c + 1);
        if (!f.overflowed && f.held_bytes + body.size() <= max_held_bytes) {
          f.held.push_back({*id, prev->seq, std::string(id_text), std::string(body)});
          f.held_bytes += body.size() + id_text.size();
        } else {
          f.overflowed = true;
          f.held.clear();
          f.held_bytes = 0;
        }
      } else if (f.ph == feed::phase::live && id->seq > f.last) {
        if (prev->seq == f.last)
          deliver(it->first, f, *id, id_text, m.substr(c + 1));
        else
          sync_feeds({it->first}); // a gap: read what is missing
      }
    }
    advance_pos(*id, id_text);
  }

  void advance_pos(stream_id p, std::string_view text) {
    if (p.seq <= pos_)
      return;
    pos_ = p.seq;
    pos_text_.assign(text.data(), text.size());
    if (syncing_ > 0) {
      syncing_ = 0;
      for (auto& [name, f] : feeds_)
        if (f.ph == feed::phase::live && f.sync_at > pos_)
          ++syncing_;
      advance_all();
    }
  }

  std::string_view topic_of(std::string_view channel) const {
    std::size_t const skip = options_.prefix.size() + 1;
    if (channel.size() < skip + 1)
      return {};
    return channel.substr(skip, channel.size() - skip - 1);
  }

  void deliver(std::string const& topic, feed& f, stream_id id, std::string_view id_text,
               std::string_view body) {
    f.last = id.seq;
    f.last_text.assign(id_text.data(), id_text.size());
    sse::frame const message = frame_with_id(id_text, body);
    bool overflow = false;
    for (auto* op : f.observers) {
      op->observed.push_back({id.seq, id.ms, message});
      overflow = overflow || op->observed.size() > max_observed;
    }
    try {
      broker_.deliver(topic, message, id_text);
    } catch (sse::message_too_large const&) {
      // Larger than this node's broker takes (counted there as refused); others may take it.
    }
    if (overflow) // a replay that takes this long to read is given up: the client retries
      fail_ops_if([](subscribe_op const& op) { return op.observed.size() > max_observed; },
                  sse::redis::errc::backlog_full);
  }

  bool has_listeners(std::string_view topic) const { return broker_.subscriber_count(topic) > 0; }

  void deliver_reset(std::string const& topic, char const* reason) {
    resets_.fetch_add(1, std::memory_order_relaxed);
    sse::event ev;
    ev.name("reset").data(std::string("{\"reason\":\"") + reason + "\"}");
    try {
      broker_.deliver(topic, sse::frame(ev), std::string_view());
    } catch (sse::message_too_large const&) {
    }
  }

  /// Follows Redis' data set: "" is an empty one. A change from one data set to another means
  /// Redis lost its data: local subscribers get `reset` and every feed starts over.
  bool check_epoch(std::string const& e) {
    if (!epoch_ || *epoch_ == e || epoch_->empty()) {
      epoch_ = e;
      return true;
    }
    epoch_ = e;
    pos_ = 0;
    pos_text_.clear();
    syncing_ = 0;
    for (auto& [name, f] : feeds_) {
      if (!f.started)
        continue; // its first read is under way, and will see the new data set
      if (has_listeners(name))
        deliver_reset(name, "redis-lost-data");
      f.last = 0;
      f.last_text = "0-0";
    }
    std::vector<std::string> restart;
    for (auto& [name, f] : feeds_)
      if (f.ph == feed::phase::reading || f.ph == feed::phase::live)
        restart.push_back(name);
    if (!restart.empty())
      sync_feeds(std::move(restart)); // whatever the new data set has already, after the reset
    fail_ops_if([](subscribe_op const&) { return true; }, sse::redis::errc::data_lost);
    return false;
  }

  // ---- Subscribes ----

  static bool has_topic(subscribe_op const& op, std::string_view topic) {
    return std::binary_search(op.topics.begin(), op.topics.end(), topic);
  }

  void admit(std::shared_ptr<subscribe_op> op) {
    if (closed_)
      return finish_new(*op, asio::error::operation_aborted);
    if (ops_.size() >= options_.max_pending_subscribes)
      return finish_new(*op, sse::redis::errc::backlog_full);
    bool all_synced = true;
    for (auto const& t : op->topics) {
      auto it = feeds_.find(t);
      all_synced = all_synced && it != feeds_.end() && synced(it->second);
    }
    if (!all_synced && down())
      return finish_new(*op, sse::redis::errc::not_connected);
    for (auto const& t : op->topics)
      ensure_feed(t);
    ops_.push_back(op);
    advance(*op);
  }

  void advance_all() {
    auto ops = ops_; // advance may complete (and remove) any of them
    for (auto& op : ops)
      if (!op->done)
        advance(*op);
  }

  void advance(subscribe_op& op) {
    if (op.done || op.st == subscribe_op::stage::reading || op.st == subscribe_op::stage::queued)
      return;
    for (auto const& t : op.topics) {
      auto it = feeds_.find(t);
      if (it == feeds_.end() || !synced(it->second))
        return; // told again when it is
    }
    if (!op.wants_replay())
      return make(op, {}, sse::resume_result::none);
    if (op.st == subscribe_op::stage::waiting) {
      if (replays_ >= options_.max_concurrent_replays) {
        op.st = subscribe_op::stage::queued;
        queued_.push_back(&op);
        return;
      }
      return start_replay(op);
    }
    place(op); // stage::read
  }

  void start_replay(subscribe_op& op) {
    ++replays_;
    op.st = subscribe_op::stage::reading;
    op.reads.clear();
    op.observed.clear();
    op.epoch_known = false;
    std::string const from =
        op.after && !op.options.replay_history ? op.after->text() : std::string("0-0");
    for (auto const& t : op.topics) {
      auto& f = feeds_.at(t);
      if (std::find(f.observers.begin(), f.observers.end(), &op) == f.observers.end())
        f.observers.push_back(&op);
      op.reads[t].from = from;
    }
    op.reads_pending = op.topics.size();
    for (auto const& t : op.topics)
      read_more(op, t);
  }

  void read_more(subscribe_op& op, std::string const& topic) {
    auto self = shared_from_this();
    std::weak_ptr<subscribe_op> weak = find_op(op);
    read(topic, op.reads[topic].from, options_.read_batch, false,
         [self, weak, topic](std::error_code ec, read_result res) {
           if (auto o = weak.lock())
             self->on_replay_read(*o, topic, ec, std::move(res));
         });
  }

  void on_replay_read(subscribe_op& op, std::string const& topic, std::error_code ec,
                      read_result res) {
    if (op.done || op.st != subscribe_op::stage::reading)
      return;
    if (ec)
      return finish(op, ec);
    if (op.epoch_known && op.epoch != res.epoch)
      return finish(op, sse::redis::errc::data_lost);
    op.epoch = res.epoch;
    op.epoch_known = true;
    auto& r = op.reads[topic];
    r.covered = std::max(r.covered, res.pos.seq);
    r.trimmed = res.trimmed;
    r.has_meta = res.has_meta;
    r.now = res.now;
    for (auto& [id, body] : res.entries)
      if (auto sid = parse_stream_id(id))
        r.entries.push_back({sid->seq, sid->ms, frame_with_id(id, body)});
    if (res.read >= options_.read_batch) {
      r.from = res.read_last;
      return read_more(op, topic);
    }
    r.finished = true;
    if (--op.reads_pending > 0)
      return;
    op.st = subscribe_op::stage::read;
    release_replay_slot();
    advance(op);
  }

  void release_replay_slot() {
    --replays_;
    while (!queued_.empty() && replays_ < options_.max_concurrent_replays) {
      subscribe_op* next = queued_.front();
      queued_.erase(queued_.begin());
      if (next->done)
        continue;
      next->st = subscribe_op::stage::waiting;
      advance(*next);
    }
  }

  /// All topics synced and the replay read: place the last id, assemble, subscribe.
  void place(subscribe_op& op) {
    char const* reason = nullptr;
    bool restarted = false;
    std::uint64_t from = 0;
    std::uint64_t covered = pos_;
    std::uint64_t now = 0;
    for (auto const& [t, r] : op.reads) {
      covered = std::max(covered, r.covered);
      now = std::max(now, r.now);
    }
    if (op.id_given && !op.options.replay_history) {
      std::uint64_t epoch = 0;
      sse::detail::parse_u64(op.epoch, epoch);
      if (!op.after || op.epoch.empty())
        reason = "unknown-id";
      else if (op.after->ms < epoch)
        reason = "restarted", restarted = true;
      else if (op.after->seq > covered)
        reason = "unknown-id"; // from the future: made up
      else {
        from = op.after->seq;
        for (auto const& [t, r] : op.reads) {
          if (r.trimmed.seq > from)
            reason = "too-old";
          else if (!r.has_meta && ttl_ms_ > 0 &&
                   op.after->ms + static_cast<std::uint64_t>(ttl_ms_) < now)
            reason = "too-old"; // the topic's keys expired: whatever came after is gone
        }
      }
    }
    std::vector<replay_entry> all;
    if (!reason || restarted) {
      std::uint64_t const oldest =
          max_age_ms_ >= 0 && now > static_cast<std::uint64_t>(max_age_ms_)
              ? now - static_cast<std::uint64_t>(max_age_ms_)
              : 0;
      for (auto& [t, r] : op.reads)
        for (auto& e : r.entries)
          all.push_back(std::move(e));
      for (auto& e : op.observed)
        all.push_back(std::move(e));
      std::sort(all.begin(), all.end(),
                [](replay_entry const& a, replay_entry const& b) { return a.seq < b.seq; });
      std::vector<replay_entry> kept;
      kept.reserve(all.size());
      for (auto& e : all) {
        if (e.seq <= from || e.seq > pos_ || (!kept.empty() && kept.back().seq == e.seq))
          continue; // before the id, or coming live, or read twice
        if (e.ms < oldest) {
          if (!restarted && op.id_given && !op.options.replay_history)
            reason = "too-old"; // expired in Redis' eyes already
          continue;
        }
        kept.push_back(std::move(e));
      }
      all = std::move(kept);
    }
    std::vector<sse::frame> replay;
    sse::resume_result resumed =
        op.id_given && !op.options.replay_history ? sse::resume_result::replayed
                                                   : sse::resume_result::none;
    if (reason) {
      resumed = sse::resume_result::reset;
      sse::event ev;
      ev.name("reset").data(std::string("{\"reason\":\"") + reason + "\"}");
      if (pos_ > 0)
        ev.id(pos_text_); // later reconnects resume from here
      replay.push_back(sse::frame(ev));
      if (!restarted)
        all.clear();
    }
    for (auto& e : all)
      replay.push_back(std::move(e.message));
    make(op, std::move(replay), resumed);
  }

  void make(subscribe_op& op, std::vector<sse::frame> replay, sse::resume_result resumed) {
    sse::subscription sub;
    try {
      sub = broker_.subscribe_with_replay(op.topics, std::move(replay), resumed, op.options);
    } catch (std::exception const&) {
      return finish(op, asio::error::operation_aborted); // the broker is closed
    }
    subscribes_.fetch_add(1, std::memory_order_relaxed);
    finish(op, {}, std::move(sub));
  }

  std::shared_ptr<subscribe_op> find_op(subscribe_op& op) {
    for (auto& p : ops_)
      if (p.get() == &op)
        return p;
    return nullptr;
  }

  template <class Pred>
  void fail_ops_if(Pred pred, std::error_code ec) {
    auto ops = ops_;
    for (auto& op : ops)
      if (!op->done && pred(*op))
        finish(*op, ec);
  }

  void finish_new(subscribe_op& op, std::error_code ec) {
    subscribe_failed_.fetch_add(1, std::memory_order_relaxed);
    pending_.fetch_sub(1, std::memory_order_relaxed);
    op.done = true;
    op.complete(ec, sse::subscription());
  }

  void finish(subscribe_op& op, std::error_code ec, sse::subscription sub = {}) {
    if (op.done)
      return;
    op.done = true;
    if (op.st == subscribe_op::stage::reading)
      release_replay_slot();
    for (auto const& t : op.topics) {
      auto it = feeds_.find(t);
      if (it != feeds_.end()) {
        auto& obs = it->second.observers;
        obs.erase(std::remove(obs.begin(), obs.end(), &op), obs.end());
      }
    }
    queued_.erase(std::remove(queued_.begin(), queued_.end(), &op), queued_.end());
    if (ec)
      subscribe_failed_.fetch_add(1, std::memory_order_relaxed);
    pending_.fetch_sub(1, std::memory_order_relaxed);
    auto keep = find_op(op); // alive through complete()
    ops_.erase(std::remove(ops_.begin(), ops_.end(), keep), ops_.end());
    op.complete(ec, std::move(sub));
  }

  // ---- Housekeeping ----

  void arm_sweep() {
    if (closed_)
      return;
    sweep_.expires_after(std::chrono::milliseconds(250));
    auto self = shared_from_this();
    sweep_.async_wait([self](std::error_code ec) { // the timer runs on the strand
      if (ec || self->closed_)
        return;
      self->sweep();
      self->arm_sweep();
    });
  }

  /// Retries feeds whose read failed; leaves the channels nobody here has listened to for
  /// `linger`.
  void sweep() {
    resync_stale();
    auto const now = clock::now();
    for (auto it = feeds_.begin(); it != feeds_.end();) {
      feed& f = it->second;
      bool const busy = !f.observers.empty() || has_listeners(it->first) ||
                        std::any_of(ops_.begin(), ops_.end(),
                                    [&](auto const& op) { return has_topic(*op, it->first); });
      if (busy) {
        f.idle_since = {};
      } else if (f.idle_since == clock::time_point{}) {
        f.idle_since = now;
      } else if (now - f.idle_since >= options_.linger) {
        pubsub_.unsubscribe(channel_of(it->first));
        it = feeds_.erase(it);
        topics_.store(feeds_.size(), std::memory_order_relaxed);
        continue;
      }
      ++it;
    }
  }

  static constexpr std::size_t max_observed = 100000;
  static constexpr std::size_t max_held_bytes = 16 * 1024 * 1024; ///< per feed, while reading

  strand_type strand_;
  sse::broker& broker_;
  sse::redis::backend_options options_;
  sse::redis::connection commands_;
  sse::redis::subscriber pubsub_;
  asio::steady_timer sweep_;
  std::string node_channel_, state_key_;
  long long max_age_ms_ = -1, ttl_ms_ = 0;

  std::mutex sha_mutex_;
  std::string publish_sha_, read_sha_;
  bool loading_[2] = {false, false};

  std::atomic<bool> closed_{false};
  // Until told otherwise, started connections are on their first attempt.
  sse::redis::connection_state commands_state_ = sse::redis::connection_state::connecting;
  sse::redis::connection_state pubsub_state_ = sse::redis::connection_state::connecting;
  feed_map feeds_;
  std::optional<std::string> epoch_; ///< Redis' data set as last seen; "" for an empty one
  std::uint64_t pos_ = 0;           ///< see the top of this file
  std::string pos_text_;
  std::size_t syncing_ = 0;         ///< live feeds waiting for `pos_` to reach their read
  std::vector<std::shared_ptr<subscribe_op>> ops_;
  std::vector<subscribe_op*> queued_; ///< waiting for a replay slot
  std::size_t replays_ = 0;

  std::atomic<std::uint64_t> published_{0}, publish_failed_{0}, received_{0}, catch_ups_{0},
      resets_{0}, subscribes_{0}, subscribe_failed_{0};
  std::atomic<std::size_t> topics_{0}, pending_{0};
};

} // namespace sse::detail::redis
