#include "messages/builtin.hpp"

#include <stdexcept>

#include "messages/catalog.hpp"
#include "messages/example.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"
#include "messages/system.hpp"
#include "messages/train.hpp"
#include "messages/world.hpp"

namespace gfdit {
namespace {

template <message... Ts>
void add_all(catalog& c) {
  // A clash between two built-in names is a programming error, caught by the first test run.
  (
      [&] {
        if (auto r = c.add<Ts>(); !r) throw std::logic_error(r.err().what);
      }(),
      ...);
}

}  // namespace

void register_builtin_messages(catalog& c) {
  add_all<msg::lifecycle_command, msg::lifecycle_state, msg::parameter_get, msg::parameter_set, msg::parameter_value,
          msg::heartbeat, msg::log_line, msg::delivery_failure, msg::node_hello>(c);
  add_all<msg::ping, msg::pong>(c);
  add_all<msg::generate_request, msg::admitted, msg::rejected, msg::artifact, msg::task_assign, msg::task_done,
          msg::reshard, msg::preempt, msg::cancel, msg::request_done, msg::progress, msg::result, msg::request_state,
          msg::worker_state, msg::cluster_state, msg::served_model, msg::worker_hello, msg::hello_query,
          msg::worker_heartbeat, msg::form_group, msg::dissolve_group, msg::group_view, msg::worker_down>(c);
  add_all<msg::world_join, msg::world_blobs>(c);
  add_all<msg::train_ready, msg::train_step, msg::train_done, msg::train_metrics>(c);
}

}  // namespace gfdit
