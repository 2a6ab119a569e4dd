// tokens: a reply streamed token by token, the way a model-serving endpoint streams one.
//
//   GET /           the page (HTML, CSS and JavaScript inline)
//   GET /generate   ?prompt=...&seed=N&max_tokens=N (default seed 0, 200 tokens, at most 2000):
//                   `token` events (data: the token with its leading space, id: its number),
//                   then `done` {"tokens": n} (id: done), then the stream ends. A reconnect
//                   with Last-Event-ID resumes after that token (the reply is deterministic);
//                   one with Last-Event-ID `done` gets 204, so that EventSource stops.
//   GET /stats      {"active", "completed", "cancelled", "connections"}
//   GET /metrics    the server's metrics, for Prometheus (no broker here: each reply is an
//                   event_stream of its own)
//
// The "model" is a word-level Markov chain of order 2 over a public-domain text (corpus.txt),
// driven by a seeded PRNG: the same prompt and seed always give the same reply. Tokens are
// produced every --token-ms on a thread and io_context of their own, not on the I/O threads;
// a reply stops as soon as its client has gone (`send` returns false).
#include "../common/options.hpp"
#include "../common/run.hpp"
#include "tokens_corpus.hpp" // generated from corpus.txt
#include "tokens_page.hpp"   // generated from page.html

#include <sse/sse.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {


/// SplitMix64: tiny, fast, and the same sequence on every platform and standard library.
class splitmix64 {
public:
  explicit splitmix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t operator()() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// A number in [0, n), n > 0.
  std::size_t below(std::size_t n) { return static_cast<std::size_t>((*this)() % n); }

private:
  std::uint64_t state_;
};

/// FNV-1a: a stable hash of the prompt, mixed into the seed.
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
      ++i;
    std::size_t const start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])))
      ++i;
    if (i > start)
      words.push_back(text.substr(start, i - start));
  }
  return words;
}

/// A word reduced to lower-case letters and digits, to match a prompt's words loosely.
std::string normalized(std::string_view word) {
  std::string out;
  for (unsigned char c : word)
    if (std::isalnum(c))
      out += static_cast<char>(std::tolower(c));
  return out;
}

/// A word-level Markov chain of order 2. The text is read as a circle, so every state has a
/// successor; everything is built in text order, so replies never depend on hash-map order.
class markov_chain {
public:
  explicit markov_chain(std::string_view text) {
    std::string body; // the text without its `#` comment lines
    std::size_t pos = 0;
    while (pos < text.size()) {
      auto end = text.find('\n', pos);
      if (end == std::string_view::npos)
        end = text.size();
      auto const line = text.substr(pos, end - pos);
      if (line.empty() || line[0] != '#') {
        body.append(line);
        body += '\n';
      }
      pos = end + 1;
    }
    auto const words = split_words(body);
    if (words.size() < 3)
      throw std::invalid_argument("markov_chain: the text needs at least three words");
    std::vector<std::uint32_t> ids;
    for (auto w : words) {
      auto [it, added] = index_.try_emplace(std::string(w), static_cast<std::uint32_t>(words_.size()));
      if (added)
        words_.emplace_back(w);
      ids.push_back(it->second);
    }
    std::size_t const n = ids.size();
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t const s = key(ids[i], ids[(i + 1) % n]);
      auto& next = next_[s];
      if (next.empty()) { // first time this state is seen
        states_.push_back(s);
        by_second_[normalized(words_[ids[(i + 1) % n]])].push_back(s);
        char const last = words_[ids[i]].back();
        if (last == '.' || last == '!' || last == '?')
          starts_.push_back(key(ids[(i + 1) % n], ids[(i + 2) % n]));
      }
      next.push_back(ids[(i + 2) % n]);
    }
    if (starts_.empty())
      starts_ = states_;
  }

  /// One reply: the tokens that follow `prompt`, drawn with `seed`.
  class cursor {
  public:
    cursor(markov_chain const& chain, std::string_view prompt, std::uint64_t seed)
        : chain_(&chain), rng_(seed ^ fnv1a(prompt)) {
      // Continue the prompt: its last two words if the text has them in that order, else a
      // state ending in one of its words (the latest that the text knows), else a sentence start.
      auto const words = split_words(prompt);
      if (words.size() >= 2) {
        auto a = chain.index_.find(std::string(words[words.size() - 2]));
        auto b = chain.index_.find(std::string(words.back()));
        if (a != chain.index_.end() && b != chain.index_.end() &&
            chain.next_.count(key(a->second, b->second))) {
          state_ = key(a->second, b->second);
          return;
        }
      }
      for (auto w = words.rbegin(); w != words.rend(); ++w) {
        auto const norm = normalized(*w);
        auto it = norm.empty() ? chain.by_second_.end() : chain.by_second_.find(norm);
        if (it != chain.by_second_.end()) {
          state_ = it->second[rng_.below(it->second.size())];
          return;
        }
      }
      state_ = chain.starts_[rng_.below(chain.starts_.size())];
      pending_[0] = first(state_);
      pending_[1] = second(state_);
      npending_ = 2;
    }

    /// The next token, with its leading space.
    std::string next() {
      std::uint32_t word;
      if (taken_ < npending_) {
        word = pending_[taken_++];
      } else {
        auto const& choices = chain_->next_.at(state_);
        word = choices[rng_.below(choices.size())];
        state_ = key(second(state_), word);
      }
      return " " + chain_->words_[word];
    }

  private:
    markov_chain const* chain_;
    splitmix64 rng_;
    std::uint64_t state_ = 0;
    std::uint32_t pending_[2] = {0, 0}; // a sentence start's own two words, said first
    std::size_t npending_ = 0, taken_ = 0;
  };

private:
  static std::uint64_t key(std::uint32_t a, std::uint32_t b) {
    return (static_cast<std::uint64_t>(a) << 32) | b;
  }
  static std::uint32_t first(std::uint64_t s) { return static_cast<std::uint32_t>(s >> 32); }
  static std::uint32_t second(std::uint64_t s) { return static_cast<std::uint32_t>(s); }

  std::vector<std::string> words_;
  std::unordered_map<std::string, std::uint32_t> index_;
  std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> next_;
  std::vector<std::uint64_t> states_, starts_;
  std::unordered_map<std::string, std::vector<std::uint64_t>> by_second_;
};

/// The id of the `done` event: a Last-Event-ID that says the client has the whole reply.
constexpr std::string_view done_id = "done";

/// Streams replies on the generator's io_context, one timer per reply, and counts them.
class generator {
public:
  static constexpr std::size_t max_active = 1000;

  generator(asio::io_context& io, markov_chain const& chain, std::chrono::milliseconds every)
      : io_(io), chain_(chain), every_(every) {}

  /// Starts a reply of `max_tokens` tokens after the first `skip` (a resumed stream); the
  /// stream to return, or nothing when too many replies are running.
  std::optional<sse::event_stream> start(std::string prompt, std::uint64_t seed,
                                         std::size_t max_tokens, std::size_t skip) {
    if (active_.fetch_add(1) >= max_active) {
      active_.fetch_sub(1);
      return std::nullopt;
    }
    auto r = std::make_shared<reply>(io_, chain_, prompt, seed, max_tokens);
    asio::post(io_, [this, r, skip] {
      for (; r->sent < std::min(skip, r->max_tokens); ++r->sent)
        r->words.next(); // deterministic: the same tokens the client has already seen
      tick(r);
    });
    return r->stream;
  }

  struct counts {
    std::size_t active;
    std::uint64_t completed, cancelled;
  };
  counts snapshot() const { return {active_.load(), completed_.load(), cancelled_.load()}; }

private:
  struct reply {
    reply(asio::io_context& io, markov_chain const& chain, std::string const& prompt,
          std::uint64_t seed, std::size_t max)
        : words(chain, prompt, seed), max_tokens(max), timer(io) {}
    sse::event_stream stream;
    markov_chain::cursor words;
    std::size_t sent = 0, max_tokens;
    asio::steady_timer timer;
  };

  /// Sends the next token (or `done`), then waits for the next turn. On the generator's thread.
  void tick(std::shared_ptr<reply> const& r) {
    if (r->sent == r->max_tokens) {
      // Its own id, so that a client reconnecting after it says it has seen the whole reply.
      r->stream.send(
          sse::json_event({{"tokens", r->max_tokens}}).name("done").id(std::string(done_id)));
      r->stream.close();
      completed_.fetch_add(1);
      active_.fetch_sub(1);
      return;
    }
    ++r->sent;
    sse::event ev(r->words.next());
    ev.name("token").id(std::to_string(r->sent));
    if (!r->stream.send(ev)) { // the client went away (or could not keep up): stop working
      cancelled_.fetch_add(1);
      active_.fetch_sub(1);
      return;
    }
    r->timer.expires_after(every_);
    r->timer.async_wait([this, r](std::error_code ec) {
      if (!ec)
        tick(r);
    });
  }

  asio::io_context& io_;
  markov_chain const& chain_;
  std::chrono::milliseconds const every_;
  std::atomic<std::size_t> active_{0};
  std::atomic<std::uint64_t> completed_{0}, cancelled_{0};
};

/// The query parameter `name` as a number in [lo, hi], `fallback` when absent, else a 400.
std::uint64_t number_param(sse::request const& req, char const* name, std::uint64_t fallback,
                           std::uint64_t lo, std::uint64_t hi) {
  auto const q = req.query(name);
  if (!q)
    return fallback;
  std::uint64_t v = 0;
  auto const r = std::from_chars(q->data(), q->data() + q->size(), v);
  if (q->empty() || r.ec != std::errc() || r.ptr != q->data() + q->size() || v < lo || v > hi)
    throw sse::http_error(400, std::string(name) + " must be a number from " + std::to_string(lo) +
                                   " to " + std::to_string(hi));
  return v;
}

} // namespace

int main(int argc, char** argv) {
  long const token_ms = examples::take_flag(argc, argv, "tokens", "--token-ms", 30, 1, 10000);
  auto options = examples::parse_options(
      argc, argv, "tokens",
      "A reply streamed token by token over Server-Sent Events (a Markov chain over a\n"
      "public-domain text stands in for the model).\n"
      "  --token-ms N   one token every N ms (default 30)");

  markov_chain const chain(tokens_corpus);

  asio::io_context gen_io(1);
  auto work = asio::make_work_guard(gen_io);
  std::thread gen_thread([&] { gen_io.run(); });
  generator gen(gen_io, chain, std::chrono::milliseconds(token_ms));

  sse::server srv(options);
  constexpr std::size_t max_prompt = 2000, default_tokens = 200, max_tokens = 2000;

  srv.route("GET", "/", [](sse::request&) {
    return sse::response::html(std::string(tokens_page)).header("Cache-Control", "no-store");
  });

  srv.route("GET", "/generate", [&](sse::request& req) {
    std::string prompt(req.query("prompt").value_or(""));
    if (prompt.size() > max_prompt)
      throw sse::http_error(400, "the prompt is longer than 2000 bytes");
    auto const seed = number_param(req, "seed", 0, 0, std::numeric_limits<std::uint64_t>::max());
    auto const count = number_param(req, "max_tokens", default_tokens, 1, max_tokens);
    // A reconnect says how far it got: the reply is deterministic, so go on from there. After
    // `done` there is nothing left: 204 is what makes EventSource stop reconnecting (a 200 that
    // sent `done` again would loop forever for any client that does not close by itself).
    std::uint64_t skip = 0;
    auto const last = req.last_event_id();
    if (last == done_id)
      return sse::response(204);
    if (last) {
      auto const r = std::from_chars(last->data(), last->data() + last->size(), skip);
      if (r.ec != std::errc() || r.ptr != last->data() + last->size())
        skip = 0;
    }
    auto stream = gen.start(std::move(prompt), seed, static_cast<std::size_t>(count),
                            static_cast<std::size_t>(std::min(skip, count)));
    if (!stream)
      return sse::response::text(429, "too many replies are being generated; try again later\n")
          .header("Retry-After", "1");
    return sse::response::stream(*stream);
  });

  srv.route("GET", "/stats", [&](sse::request&) {
    auto const c = gen.snapshot();
    nlohmann::json const j = {{"active", c.active},
                              {"completed", c.completed},
                              {"cancelled", c.cancelled},
                              {"connections", srv.connections()}};
    return sse::response::json(200, j.dump()).header("Cache-Control", "no-store");
  });

  srv.route("GET", "/metrics", sse::metrics_handler(srv));

  int const rc = examples::serve_until_signal(srv, "tokens");
  work.reset();
  gen_io.stop();
  gen_thread.join();
  return rc;
}
