#pragma once

#include <sse/detail/deadline.hpp>
#include <sse/queue_limits.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sse::detail {

template <class Message>
struct topic_history;

/// One kept event. It stays at one address while kept (a deque that only grows at the back
/// and shrinks at the front never moves its elements), so the id index and the broker-wide
/// publish-order list can point at it.
template <class Message>
struct history_entry {
  std::uint64_t seq; ///< broker-wide publish order
  std::string id;    ///< the event id clients see ("" if the message carries none we know)
  Message message;
  std::size_t bytes;
  std::chrono::steady_clock::time_point at;
  topic_history<Message>* owner;
  history_entry* older; ///< the previous entry kept broker-wide, any topic
  history_entry* newer;
};

/// What one topic keeps for resume.
template <class Message>
struct topic_history {
  std::deque<history_entry<Message>> entries;
  std::size_t bytes = 0;
  /// Highest sequence number not kept (trimmed, or too large to keep): a client that last saw
  /// an older one missed something we no longer have.
  std::uint64_t trimmed_upto = 0;
  history_limits limits; ///< this topic's limits now (kept current by the broker)
  bool enabled = false;  ///< once true it stays, so `trimmed_upto` is never lost
};

/// Every topic's history, the index from ids to kept entries and the broker-wide byte budget.
///
/// Not thread-safe: the broker calls it under its lock. Every operation is O(1) per entry
/// added or removed except `trim_expired`, which also visits each topic with history once.
template <class Message>
class history {
public:
  using clock = std::chrono::steady_clock;
  using entry = history_entry<Message>;

  history() = default;
  history(history const&) = delete;
  history& operator=(history const&) = delete;

  /// Starts keeping history for `t` within `limits`.
  void enable(topic_history<Message>& t, history_limits const& limits) {
    topics_.push_back(&t);
    t.enabled = true;
    t.limits = limits;
  }

  /// New limits for `t`, applied at once.
  void set_limits(topic_history<Message>& t, history_limits const& limits, clock::time_point now) {
    t.limits = limits;
    trim(t, now);
  }

  std::size_t budget() const noexcept { return budget_; }
  void set_budget(std::size_t bytes) {
    budget_ = bytes;
    trim_budget();
  }

  /// Keeps `m` as the newest entry of `t`, then trims `t` and the budget. A message larger
  /// than the topic's byte bound (or the whole budget) is not kept and leaves the rest alone:
  /// it only marks a gap, so a resume from before it resets instead of silently skipping it.
  /// @returns true if `m` was kept.
  bool push(topic_history<Message>& t, std::uint64_t seq, std::string id, Message const& m,
            std::size_t size, clock::time_point now) {
    if (t.limits.max_events == 0 || size > t.limits.max_bytes || size > budget_) {
      t.trimmed_upto = seq;
      trim(t, now);
      return false;
    }
    t.entries.push_back({seq, std::move(id), m, size, now, &t, newest_, nullptr});
    entry& e = t.entries.back();
    (newest_ ? newest_->newer : oldest_) = &e;
    newest_ = &e;
    t.bytes += size;
    bytes_ += size;
    ++entries_;
    if (!e.id.empty())
      index(e);
    trim(t, now);
    trim_budget();
    return true;
  }

  /// Drops `t`'s entries past its count, byte and age bounds.
  void trim(topic_history<Message>& t, clock::time_point now) {
    while (!t.entries.empty() &&
           (t.entries.size() > t.limits.max_events || t.bytes > t.limits.max_bytes ||
            expired(t, t.entries.front(), now)))
      pop_front(t, nullptr);
  }

  /// Drops expired entries of every topic, at most `work` of them (moving their messages to
  /// `freed`, so the caller can release them outside its lock; it must have room for `work`).
  /// @returns when to come back: the earliest expiry of what is left plus a little slack (so
  ///          that steady traffic does not wake the caller once per event), `now` if `work`
  ///          ran out, `time_point::max()` if nothing kept ever expires.
  clock::time_point trim_expired(clock::time_point now, std::size_t work,
                                 std::vector<Message>& freed) {
    auto next = clock::time_point::max();
    for (auto* t : topics_) {
      while (!t->entries.empty() && expired(*t, t->entries.front(), now)) {
        if (work == 0)
          return now;
        --work;
        pop_front(*t, &freed);
      }
      if (!t->entries.empty())
        next = std::min(next, wake_for(*t, t->entries.front()));
    }
    return next;
  }

  /// When the trimmer should come for `e` (the front of `t`): its expiry plus a slack of a
  /// sixteenth of the age bound, between 5 ms and 1 s.
  static clock::time_point wake_for(topic_history<Message> const& t, entry const& e) noexcept {
    using std::chrono::milliseconds;
    auto const slack = std::clamp(t.limits.max_age / 16, milliseconds(5), milliseconds(1000));
    return deadline_after(e.at, saturating_add(t.limits.max_age, slack));
  }

  /// The sequence number of the newest kept entry whose id is `id`: O(1), whatever its shape.
  std::optional<std::uint64_t> find(std::string_view id) const {
    auto it = index_.find(id);
    if (it == index_.end())
      return std::nullopt;
    return it->second->seq;
  }

  std::size_t entries() const noexcept { return entries_; }
  std::size_t bytes() const noexcept { return bytes_; }

  /// Forgets every topic and entry (the topics themselves are about to go).
  void clear() noexcept {
    index_.clear();
    topics_.clear();
    oldest_ = newest_ = nullptr;
    bytes_ = entries_ = 0;
  }

private:
  static bool expired(topic_history<Message> const& t, entry const& e,
                      clock::time_point now) noexcept {
    return now > deadline_after(e.at, t.limits.max_age);
  }

  /// Points the id at `e`, the newest entry carrying it. The key is a view of `e.id`, so a
  /// duplicate re-keys the node to the new entry (no allocation) before the old one can go.
  void index(entry& e) {
    auto it = index_.find(std::string_view(e.id));
    if (it == index_.end()) {
      index_.emplace(std::string_view(e.id), &e);
      return;
    }
    auto node = index_.extract(it);
    node.key() = std::string_view(e.id);
    node.mapped() = &e;
    index_.insert(std::move(node));
  }

  void trim_budget() {
    while (bytes_ > budget_ && oldest_)
      pop_front(*oldest_->owner, nullptr); // the broker-wide oldest is its topic's oldest
  }

  void pop_front(topic_history<Message>& t, std::vector<Message>* freed) {
    entry& e = t.entries.front();
    if (!e.id.empty()) {
      auto it = index_.find(std::string_view(e.id));
      if (it != index_.end() && it->second == &e)
        index_.erase(it);
    }
    (e.older ? e.older->newer : oldest_) = e.newer;
    (e.newer ? e.newer->older : newest_) = e.older;
    t.trimmed_upto = std::max(t.trimmed_upto, e.seq);
    t.bytes -= e.bytes;
    bytes_ -= e.bytes;
    --entries_;
    if (freed)
      freed->push_back(std::move(e.message));
    t.entries.pop_front();
  }

  std::unordered_map<std::string_view, entry*> index_;
  std::vector<topic_history<Message>*> topics_; ///< topics with history; they outlive it
  entry* oldest_ = nullptr;
  entry* newest_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t entries_ = 0;
  std::size_t budget_ = 64 * 1024 * 1024;
};

} // namespace sse::detail
