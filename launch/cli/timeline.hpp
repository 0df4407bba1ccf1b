#pragma once
// `bag timeline`: what ran where, over time, drawn from a bag. Spans come from extractors, each
// of which recognises one pattern of envelopes:
//   serving_tasks   a serving.task_assign to a group opens a span on every member worker's lane;
//                   the matching serving.task_done (same task_id) closes it, with the task's
//                   own start_us/end_us when it has them;
//   request_reply   a directed request and the reply with its correlation: a span on the
//                   responder's lane (generic, works for any graph).
// Output: Chrome-trace / Perfetto JSON ("X" events, one thread per lane) or an SVG Gantt chart.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bag/bag_reader.hpp"

namespace gfdit::bag {

struct span {
  std::string lane;   // "worker 3", or the responder's actor name
  std::string name;   // "req 7 denoise [4,8)"
  std::string group;  // colour key (the request)
  std::int64_t start_us = 0, end_us = 0;
  bool complete = true;  // false: never closed in the bag (drawn to the end, hatched)
  nlohmann::json args = nlohmann::json::object();
};

// Sees every envelope in bag order, then hands back its spans.
class span_extractor {
 public:
  virtual ~span_extractor() = default;
  virtual const char* name() const = 0;
  virtual void see(const record& r) = 0;
  virtual std::vector<span> finish(std::int64_t end_us) = 0;
};

std::unique_ptr<span_extractor> serving_task_extractor();
std::unique_ptr<span_extractor> request_reply_extractor();

struct timeline {
  std::vector<span> spans;         // sorted by lane, then start
  std::vector<std::string> lanes;  // in display order
  std::string source;              // which extractor produced them
};

// Runs the serving extractor; when it finds no task, the generic one.
result<timeline> build_timeline(reader& r);
std::string to_chrome_trace(const timeline& t);
std::string to_svg(const timeline& t, int width = 1400);

}  // namespace gfdit::bag
