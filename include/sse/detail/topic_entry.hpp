#pragma once

#include <sse/detail/history.hpp>
#include <sse/detail/subscriber_state.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace sse::detail {

/// What one fan-out did, for the broker's counters.
template <class Message>
struct fan_out_result {
  std::size_t queued = 0, dropped = 0;
  std::vector<std::shared_ptr<subscriber_state<Message>>> evicted; ///< to unlink from the broker
};

/// One topic of a broker: who listens to it, what it keeps for resume, and its fan-out.
///
/// The broker's lock guards the name, `history`, `members` and `tickets`; it is held O(1) per
/// publish. The fan-out (a push into every subscriber's queue) runs under the topic's own
/// `fan_` lock, which no other topic, no subscribe and no unsubscribe waits for: they queue
/// their change (`join`, `leave`) and whoever holds `fan_` next applies it before it pushes.
/// A publish takes a ticket under the broker's lock, so fan-outs of one topic run in ticket
/// (publish) order, and a subscriber skips the tickets it was given by a replay.
template <class Message>
class topic_entry : public std::enable_shared_from_this<topic_entry<Message>> {
public:
  using state_type = subscriber_state<Message>;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  explicit topic_entry(std::string n) : name(std::move(n)) {}
  topic_entry(topic_entry const&) = delete;
  topic_entry& operator=(topic_entry const&) = delete;
  ~topic_entry() {
    for (change* c = head_; c;)
      change_ptr(std::exchange(c, c->next));
  }

  // Guarded by the broker's lock.
  std::string const name;
  topic_history<Message> history;
  std::size_t members = 0;   ///< subscriptions to this topic now
  std::uint64_t tickets = 0; ///< fan-outs handed out: the latest publish's ticket

  /// A join or a leave not applied yet, allocated before the broker's lock is taken so that
  /// queueing it cannot fail half-way through a subscribe.
  struct change {
    std::shared_ptr<state_type> state;
    std::size_t slot = 0;            ///< which of its slots is this topic
    std::uint64_t join_after = 0;    ///< for a join: the tickets it does not get live
    bool add = false;
    change* next = nullptr;
  };
  using change_ptr = std::unique_ptr<change>;

  /// Adds `c->state` for the fan-outs after ticket `c->join_after`. Called under the broker's
  /// lock, so no fan-out of a later ticket misses it.
  void join(change_ptr c) noexcept {
    c->add = true;
    queue(std::move(c));
  }
  /// Removes `c->state`; until the next fan-out applies it, the subscriber stays listed (its
  /// queue is ended, so it gets nothing).
  void leave(change_ptr c) noexcept {
    c->add = false;
    queue(std::move(c));
  }
  /// Applies queued joins and leaves now unless a fan-out is running (it will).
  void try_apply() {
    std::unique_lock<std::mutex> lk(fan_, std::try_to_lock);
    if (lk.owns_lock())
      apply_locked();
  }

  /// Pushes `m` into every member's queue, after every fan-out of an earlier ticket. Never
  /// throws: a ring that cannot grow drops the message for that subscriber.
  void fan_out(std::uint64_t ticket, Message const& m, std::size_t size,
               fan_out_result<Message>& r) noexcept {
    std::unique_lock<std::mutex> lk(fan_);
    if (done_ + 1 != ticket) {
      ++waiting_;
      turn_.wait(lk, [&] { return done_ + 1 == ticket; });
      --waiting_;
    }
    apply_locked();
    for (std::size_t i = 0; i < members_.size();) {
      member& mb = members_[i];
      if (ticket <= mb.join_after) { // replayed to it already
        ++i;
        continue;
      }
      state_type& s = *mb.state;
      waiter* wake = nullptr;
      typename state_type::push_result res;
      try {
        res = s.push(m, size, wake, r.dropped);
      } catch (...) { // out of memory growing its ring: this one message is lost to it
        ++r.dropped;
        res = state_type::push_result::dropped;
      }
      if (res == state_type::push_result::queued)
        ++r.queued;
      if (wake)
        wake->notify(res == state_type::push_result::evicted ? make_error_code(errc::evicted)
                                                            : std::error_code{});
      if (res == state_type::push_result::evicted) {
        try {
          r.evicted.push_back(mb.state);
        } catch (...) { // the broker's count stays one too high until it unsubscribes
        }
        remove_at(i); // the last member moves into i
        continue;
      }
      ++i;
    }
    apply_locked();
    done_ = ticket;
    if (waiting_)
      turn_.notify_all();
  }

  /// Takes every member out (the broker closes): calls `f(state)` for each, under `fan_`.
  template <class F>
  void clear(F&& f) {
    std::lock_guard<std::mutex> lk(fan_);
    apply_locked();
    for (auto& mb : members_) {
      mb.state->slots[mb.slot].index = npos;
      f(*mb.state);
    }
    members_.clear();
    members_.shrink_to_fit();
  }

private:
  struct member {
    std::shared_ptr<state_type> state;
    std::size_t slot;           ///< which of its slots is this topic
    std::uint64_t join_after;   ///< tickets up to this one it got from history instead
  };
  void queue(change_ptr c) noexcept {
    std::lock_guard<std::mutex> lk(ops_mutex_);
    change* raw = c.release();
    (tail_ ? tail_->next : head_) = raw;
    tail_ = raw;
  }

  void apply_locked() noexcept {
    change* c;
    {
      std::lock_guard<std::mutex> lk(ops_mutex_);
      c = std::exchange(head_, nullptr);
      tail_ = nullptr;
    }
    while (c) {
      change_ptr o(c);
      c = c->next;
      auto& index = o->state->slots[o->slot].index;
      if (o->add) {
        if (index != npos)
          continue;
        try {
          members_.push_back({o->state, o->slot, o->join_after});
        } catch (...) { // out of memory: it gets nothing from this topic (its queue stays open)
          continue;
        }
        index = members_.size() - 1;
      } else if (index != npos) {
        remove_at(index);
      }
    }
  }

  void remove_at(std::size_t i) noexcept {
    members_[i].state->slots[members_[i].slot].index = npos;
    if (i + 1 != members_.size()) {
      members_[i] = std::move(members_.back());
      members_[i].state->slots[members_[i].slot].index = i;
    }
    members_.pop_back();
  }

  std::mutex fan_;
  std::condition_variable turn_;
  std::uint64_t done_ = 0; ///< the last ticket whose fan-out ran (under fan_)
  int waiting_ = 0;        ///< fan-outs waiting for their turn (under fan_)
  std::vector<member> members_; ///< under fan_
  std::mutex ops_mutex_;
  change* head_ = nullptr; ///< joins and leaves not applied yet, in order (under ops_mutex_)
  change* tail_ = nullptr;

};

} // namespace sse::detail
