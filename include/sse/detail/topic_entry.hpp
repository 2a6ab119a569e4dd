#pragma once

#include <sse/detail/fan_out_shard.hpp>
#include <sse/detail/history.hpp>
#include <sse/detail/ring.hpp>
#include <sse/detail/subscriber_state.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace sse::detail {

/// What fan-outs did, for the broker's counters.
template <class Message>
struct fan_out_result {
  std::size_t queued = 0, dropped = 0;
  bool deep = false; ///< a queue was left more than half full
  std::vector<std::shared_ptr<subscriber_state<Message>>> evicted; ///< to unlink from the broker
};

/// The broker, as its fan-outs see it: where counters and evictions go.
template <class Message>
class fan_out_sink {
public:
  /// Counts what fan-outs did; called under fan-out locks, so it takes none.
  virtual void counted(std::size_t queued, std::size_t dropped) noexcept = 0;
  /// Takes subscribers that fan-outs evicted out of the counts and their other topics.
  /// Called outside every fan-out lock: it takes the broker's.
  virtual void unlink_evicted(std::vector<std::shared_ptr<subscriber_state<Message>>>& e) noexcept = 0;

protected:
  ~fan_out_sink() = default;
};

/// The subscribers of one topic that one I/O thread feeds (or, without a shard, that
/// publishers feed themselves), with the events not yet pushed to them.
///
/// A publish queues its event here under the broker's lock, so events wait in publish order.
/// With a shard, the group also waits in the shard's queue once per event and the shard's
/// runner pushes them (under the shard's run lock); without one, the publisher runs the group
/// itself under `fan_`. Either lock is held for nothing but pushes into queues, so a publisher
/// waiting for it waits a bounded time, and no cycle can form. Subscribes and unsubscribes
/// never wait for it: they queue a change that the next run applies first.
template <class Message>
class fan_out_group final : public fan_out_shard::job,
                            public std::enable_shared_from_this<fan_out_group<Message>> {
public:
  using state_type = subscriber_state<Message>;
  using next = fan_out_shard::next;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  fan_out_group(std::shared_ptr<fan_out_shard> s, std::weak_ptr<fan_out_sink<Message>> sink)
      : shard(std::move(s)), sink_(std::move(sink)) {}
  fan_out_group(fan_out_group const&) = delete;
  fan_out_group& operator=(fan_out_group const&) = delete;
  ~fan_out_group() {
    for (change* c = head_; c;)
      change_ptr(std::exchange(c, c->next));
  }

  std::shared_ptr<fan_out_shard> const shard; ///< null: publishers run the fan-outs
  std::size_t members = 0;                     ///< subscribers now (under the broker's lock)

  /// A join or a leave not applied yet, allocated before the broker's lock is taken so that
  /// queueing it cannot fail half-way through a subscribe.
  struct change {
    std::shared_ptr<state_type> state;
    std::size_t slot = 0;         ///< which of its slots is this topic
    std::uint64_t join_after = 0; ///< for a join: the tickets it does not get live
    bool add = false;
    change* next = nullptr;
  };
  using change_ptr = std::unique_ptr<change>;

  /// Adds `c->state` for the fan-outs after ticket `c->join_after`. Called under the broker's
  /// lock, so no fan-out of a later ticket misses it.
  void join(change_ptr c) noexcept {
    c->add = true;
    queue_change(std::move(c));
  }
  /// Removes `c->state`; until a run applies it, the subscriber stays listed (its queue is
  /// ended, so it gets nothing).
  void leave(change_ptr c) noexcept {
    c->add = false;
    queue_change(std::move(c));
  }

  /// Under the broker's lock: queues ticket `ticket`. `receivers`, given only for a group
  /// without a shard, gets the count of queues it reached (the caller runs the group before
  /// it reads it). Says what the caller must do outside the lock (`go`).
  next enqueue(std::uint64_t ticket, Message const& m, std::size_t size,
               std::size_t* receivers) noexcept {
    std::lock_guard<std::mutex> lk(pend_);
    try {
      pending_.push_back(item{m, size, ticket, receivers});
    } catch (...) { // out of memory: this group's subscribers miss it
      return next::failed;
    }
    if (!shard)
      return next::run;
    next const n = shard->enqueue(this->shared_from_this(), members);
    if (n == next::failed)
      pending_.pop_back(); // no place in the shard's queue: nobody would ever push it
    return n;
  }

  /// Outside the broker's lock, what `enqueue` said.
  void go(next n) noexcept {
    if (n == next::post)
      shard->post();
    else if (n == next::run && shard)
      shard->run();
    else if (n == next::run)
      run();
  }

  /// Without a shard: runs every queued fan-out, in order (after a run in progress).
  void run() noexcept {
    fan_out_result<Message> r;
    {
      std::lock_guard<std::mutex> lk(fan_);
      apply_locked();
      for (;;) {
        {
          std::lock_guard<std::mutex> plk(pend_);
          if (pending_.empty())
            break;
          running_.swap(pending_);
        }
        for (; !running_.empty(); running_.pop_front()) {
          item& it = running_.front();
          std::size_t const before = r.queued;
          push_all(it, r);
          if (it.receivers)
            *it.receivers = r.queued - before;
        }
      }
      apply_locked();
    }
    report(r);
  }

  /// With a shard, under its run lock: pushes the oldest queued event.
  fan_out_shard::job::outcome run_one() noexcept override {
    apply_locked();
    fan_out_result<Message> r;
    fan_out_shard::job::outcome o;
    {
      std::unique_lock<std::mutex> plk(pend_);
      if (pending_.empty()) // cleared by the broker's close
        return o;
      item it = std::move(pending_.front());
      pending_.pop_front();
      plk.unlock();
      o.pushes = members_.size();
      push_all(it, r);
      o.deep = r.deep;
    }
    apply_locked();
    if (r.queued || r.dropped)
      if (auto s = sink_.lock())
        s->counted(r.queued, r.dropped);
    if (r.evicted.empty())
      return o;
    std::lock_guard<std::mutex> lk(evicted_mutex_);
    try {
      evicted_.insert(evicted_.end(), r.evicted.begin(), r.evicted.end());
    } catch (...) { // the broker's counts stay too high until they unsubscribe
    }
    o.evicted = true;
    return o;
  }

  /// After `run_one` said it evicted, outside the shard's run lock.
  void flush() noexcept override {
    fan_out_result<Message> r;
    {
      std::lock_guard<std::mutex> lk(evicted_mutex_);
      r.evicted.swap(evicted_);
    }
    report(r);
  }

  /// Takes every member out (the broker closes): calls `f(state)` for each, under the run lock.
  template <class F>
  void clear(F&& f) {
    std::lock_guard<std::mutex> lk(members_mutex());
    {
      std::lock_guard<std::mutex> plk(pend_);
      pending_.clear();
    }
    apply_locked();
    for (auto& mb : members_) {
      mb.state->slots[mb.slot].index = npos;
      f(*mb.state);
    }
    members_.clear();
    members_.shrink_to_fit();
  }

  /// Applies queued joins and leaves now, unless a run is in progress (it will).
  void try_apply() noexcept {
    std::unique_lock<std::mutex> lk(members_mutex(), std::try_to_lock);
    if (lk.owns_lock())
      apply_locked();
  }

private:
  struct member {
    std::shared_ptr<state_type> state;
    std::size_t slot;         ///< which of its slots is this topic
    std::uint64_t join_after; ///< tickets up to this one it got from history instead
  };
  struct item {
    Message message;
    std::size_t size;
    std::uint64_t ticket;
    std::size_t* receivers; ///< the publisher's, when it waits for the result
  };

  /// Who may touch `members_`: the shard's runner, or (without a shard) the group's.
  std::mutex& members_mutex() noexcept { return shard ? shard->run_mutex() : fan_; }

  void report(fan_out_result<Message>& r) noexcept {
    if (!r.queued && !r.dropped && r.evicted.empty())
      return;
    if (auto s = sink_.lock()) {
      s->counted(r.queued, r.dropped);
      if (!r.evicted.empty())
        s->unlink_evicted(r.evicted);
    }
  }

  void push_all(item const& it, fan_out_result<Message>& r) noexcept {
    for (std::size_t i = 0; i < members_.size();) {
      member& mb = members_[i];
      if (it.ticket <= mb.join_after) { // replayed to it already, or before its time
        ++i;
        continue;
      }
      state_type& s = *mb.state;
      waiter* wake = nullptr;
      typename state_type::push_result res;
      try {
        res = s.push(it.message, it.size, wake, r.dropped, r.deep);
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
  }

  void queue_change(change_ptr c) noexcept {
    std::lock_guard<std::mutex> lk(changes_);
    change* raw = c.release();
    (tail_ ? tail_->next : head_) = raw;
    tail_ = raw;
  }

  void apply_locked() noexcept {
    change* c;
    {
      std::lock_guard<std::mutex> lk(changes_);
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

  std::weak_ptr<fan_out_sink<Message>> sink_;
  std::mutex fan_;              ///< without a shard: held by whoever runs the fan-outs
  std::vector<member> members_; ///< under members_mutex()
  ring<item> running_;          ///< under fan_: the batch being run
  std::mutex pend_;
  ring<item> pending_; ///< under pend_: queued by publishers, in ticket order
  std::mutex changes_;
  change* head_ = nullptr; ///< joins and leaves not applied yet, in order (under changes_)
  change* tail_ = nullptr;
  std::mutex evicted_mutex_;
  std::vector<std::shared_ptr<state_type>> evicted_; ///< evicted by run_one, for flush
};

/// One topic of a broker: what it keeps for resume, and its subscribers in groups, one per
/// I/O thread that made some (plus one fed by publishers). All of it is under the broker's
/// lock, held O(1) per publish; the fan-outs run in the groups.
template <class Message>
class topic_entry : public std::enable_shared_from_this<topic_entry<Message>> {
public:
  using group_type = fan_out_group<Message>;

  explicit topic_entry(std::string n) : name(std::move(n)) {}
  topic_entry(topic_entry const&) = delete;
  topic_entry& operator=(topic_entry const&) = delete;

  std::string const name;
  topic_history<Message> history;
  std::size_t members = 0;   ///< subscriptions to this topic now
  std::uint64_t tickets = 0; ///< the latest publish's place in the topic's order
  std::vector<std::shared_ptr<group_type>> groups;

  /// The group of `shard` (null: publishers'), made on first use. Throws only bad_alloc.
  group_type* group_for(fan_out_shard* shard, std::weak_ptr<fan_out_sink<Message>> const& sink) {
    for (auto& g : groups)
      if (g->shard.get() == shard)
        return g.get();
    auto g = std::make_shared<group_type>(shard ? shard->shared_from_this() : nullptr, sink);
    groups.push_back(g);
    return g.get();
  }
};

} // namespace sse::detail
