#pragma once
// Replay debugging: re-drive one actor's core from its recorded inputs, in order and with the
// recorded stamps as its time, and diff what it emits against what it emitted in the recording.
//
// A core that can be replayed registers a factory under a name (usually the actor type):
//
//   class counter_core : public gfdit::replayable_core {
//     std::vector<gfdit::envelope> feed(const gfdit::envelope& in) override { ... }
//   };
//   GFDIT_REGISTER_REPLAYABLE_CORE("gfdit.counter", [](const gfdit::replay_params& p)
//       -> gfdit::result<std::unique_ptr<gfdit::replayable_core>> { ... });
//
// A driver (envelope in, outgoing messages out) becomes one with driver_core (driver_core.hpp):
// the serving control plane's scheduler, admission and membership register theirs in
// gfdit_serving_replay (actors/<name>/<name>_replay.cpp).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/runtime/registry.hpp"  // GFDIT_CONCAT
#include "bag/bag_reader.hpp"
#include "common/result.hpp"
#include "messages/envelope.hpp"

namespace gfdit {

class replayable_core {
 public:
  virtual ~replayable_core() = default;
  // One recorded input in, the envelopes the actor sent because of it out. Only type_id,
  // version, kind, destination, correlation and payload are compared; sender, seq and stamps
  // are the runtime's.
  virtual std::vector<envelope> feed(const envelope& in) = 0;
  // The topics the actor subscribes to, as the graph names them.
  virtual std::vector<std::string> topics() const { return {}; }
  // Which recorded envelopes are inputs of the actor. Default: everything directed to it
  // (direct, reply, failure; its own ticks included) except lifecycle and parameter messages
  // (the runtime serves those, not the core), and the messages on topics().
  virtual bool accepts(const envelope& recorded, const std::string& actor) const;
  // Which envelopes the actor sent are the core's outputs. Default: everything it sent except
  // to itself (ticks, which are inputs) and its lifecycle / parameter replies.
  virtual bool produces(const envelope& recorded, const std::string& actor) const;
  // The core's state, for the stepper's "state" command.
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
};

// What a core factory is given: the actor's name in the bag, the bag's header (launch file
// text, catalog), options from the command line (--policy P becomes {"policy": "P"}; values
// are strings) and the actor's parameters as recorded in the bag (the last
// system.parameter_value it sent, e.g. to a recorder with `parameters_of`; {} when none).
// Options override parameters.
struct replay_params {
  std::string actor;
  const bag::header* header = nullptr;
  nlohmann::json options = nlohmann::json::object();
  nlohmann::json parameters = nlohmann::json::object();
};

// The actor's parameters as its last recorded system.parameter_value reply reports them.
result<nlohmann::json> recorded_parameters(bag::reader& r, const std::string& actor);

using replayable_core_factory = std::function<result<std::unique_ptr<replayable_core>>(const replay_params&)>;

class replayable_core_registry {
 public:
  static replayable_core_registry& global();
  bool add(const std::string& name, replayable_core_factory f);  // the first registration wins
  result<std::unique_ptr<replayable_core>> make(const std::string& name, const replay_params& p) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::pair<std::string, replayable_core_factory>> entries_;
};

// The comparison of one output.
bool same_output(const envelope& expected, const envelope& actual);

struct divergence {
  std::uint64_t index = 0;                   // of the output, among the actor's outputs (from 0)
  std::uint64_t input_index = 0;             // bag index of the input being fed when it diverged
  std::optional<envelope> expected, actual;  // one is empty when a side ran out
  nlohmann::json to_json() const;
};

struct replay_outcome {
  std::uint64_t inputs = 0, outputs = 0;  // fed, and outputs compared equal
  std::optional<divergence> first;        // empty: identical
};

// The inputs and expected outputs of `actor` in a bag. The inputs come in the order the actor
// handled them when the bag has its dispatch markers (recorder parameter `handled`), else in
// bag order; the outputs in the order it sent them.
struct replay_script {
  std::vector<bag::record> inputs;
  std::vector<bag::record> expected;
  bool dispatch_order = false;  // the inputs follow the dispatch markers
};
result<replay_script> load_script(bag::reader& r, const std::string& actor, const replayable_core& core);

// Feeds inputs one at a time; the stepper drives it, replay() runs it to the end.
class replay_session {
 public:
  replay_session(replay_script script, std::unique_ptr<replayable_core> core);
  // Feeds the next input; returns false at the end or after the first divergence.
  bool step();
  bool done() const { return next_input_ >= script_.inputs.size() || outcome_.first.has_value(); }
  // Run out: trailing expected outputs never produced are a divergence too.
  const replay_outcome& finish();
  const replay_outcome& outcome() const { return outcome_; }
  std::size_t next_input() const { return next_input_; }
  const replay_script& script() const { return script_; }
  const replayable_core& core() const { return *core_; }
  const std::vector<envelope>& last_outputs() const { return last_; }

 private:
  replay_script script_;
  std::unique_ptr<replayable_core> core_;
  std::size_t next_input_ = 0, next_expected_ = 0;
  replay_outcome outcome_;
  std::vector<envelope> last_;
};

result<replay_outcome> replay(const std::string& bag_path, const std::string& actor, const std::string& core_name,
                              nlohmann::json options = nlohmann::json::object());

}  // namespace gfdit

#define GFDIT_REGISTER_REPLAYABLE_CORE(name, factory)                \
  static const bool GFDIT_CONCAT(gfdit_replayable_core_, __LINE__) = \
      ::gfdit::replayable_core_registry::global().add(name, factory)
