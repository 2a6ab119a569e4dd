#pragma once

#include <sse/detail/history.hpp>
#include <sse/detail/subscriber_state.hpp>

#include <string>
#include <vector>

namespace sse::detail {

/// One topic of a broker: who listens to it and what it keeps for resume.
template <class Message>
struct topic_entry {
  std::string name;
  std::vector<subscriber_state<Message>*> subscribers;
  topic_history<Message> history;
};

} // namespace sse::detail
