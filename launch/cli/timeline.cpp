#include "launch/cli/timeline.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "common/hash.hpp"
#include "common/xml.hpp"
#include "messages/serving.hpp"

namespace gfdit::bag {
namespace {

std::int64_t wall_us(const envelope& e, std::int64_t t0_ns) { return (e.time.wall_ns - t0_ns) / 1000; }

class serving_tasks final : public span_extractor {
 public:
  const char* name() const override { return "serving_tasks"; }
  void see(const record& r) override {
    const auto& e = r.env;
    if (t0_ == 0 || e.time.wall_ns < t0_) t0_ = e.time.wall_ns;
    if (e.is<msg::task_assign>()) {
      auto a = open<msg::task_assign>(e);
      if (!a || open_.count(a->task_id) || closed_.count(a->task_id)) return;
      open_[a->task_id] = {*a, e.time.wall_ns};
    } else if (e.is<msg::task_done>()) {
      auto d = open<msg::task_done>(e);
      if (!d) return;
      auto it = open_.find(d->task_id);
      if (it == open_.end()) return;
      closed_.insert(d->task_id);
      const auto& a = it->second.assign;
      const bool model_time = d->end_us > d->start_us;
      if (model_time) any_model_time_ = true;
      for (auto m : a.members) {
        span s = make(a, m);
        s.start_us = model_time ? d->start_us : (it->second.wall_ns - t0_) / 1000;
        s.end_us = model_time ? d->end_us : wall_us(e, t0_);
        s.args["ok"] = d->ok;
        if (!d->ok) s.args["error"] = d->error;
        s.args["reshard_us"] = d->reshard_us;
        s.args["compute_us"] = d->compute_us;
        last_us_ = std::max(last_us_, s.end_us);
        spans_.push_back(std::move(s));
      }
      open_.erase(it);
    }
  }
  std::vector<span> finish(std::int64_t end_us) override {
    for (const auto& [id, o] : open_)
      for (auto m : o.assign.members) {
        span s = make(o.assign, m);
        s.start_us = any_model_time_ ? o.assign.issued_us : (o.wall_ns - t0_) / 1000;
        s.end_us = std::max(s.start_us, any_model_time_ ? last_us_ : end_us);
        s.complete = false;
        spans_.push_back(std::move(s));
      }
    return std::move(spans_);
  }

 private:
  static span make(const msg::task_assign& a, std::int32_t member) {
    span s;
    s.lane = "worker " + std::to_string(member);
    s.name = "req " + std::to_string(a.request_id) + " " + a.stage;
    if (a.stage == "denoise") s.name += " [" + std::to_string(a.step_begin) + "," + std::to_string(a.step_end) + ")";
    s.group = "req " + std::to_string(a.request_id);
    s.args = {{"task_id", a.task_id},
              {"request_id", a.request_id},
              {"stage", a.stage},
              {"group_id", a.group_id},
              {"members", a.members}};
    return s;
  }
  struct pending {
    msg::task_assign assign;
    std::int64_t wall_ns = 0;
  };
  std::map<std::uint64_t, pending> open_;
  std::set<std::uint64_t> closed_;
  std::vector<span> spans_;
  std::int64_t t0_ = 0, last_us_ = 0;
  bool any_model_time_ = false;
};

class request_reply final : public span_extractor {
 public:
  const char* name() const override { return "request_reply"; }
  void see(const record& r) override {
    const auto& e = r.env;
    if (t0_ == 0 || e.time.wall_ns < t0_) t0_ = e.time.wall_ns;
    if (e.kind == route::direct && e.correlation != 0) {
      open_[{e.sender, e.correlation}] = e;
      open_.at({e.sender, e.correlation}).payload.clear();
    } else if ((e.kind == route::reply || e.kind == route::failure) && e.correlation != 0) {
      auto it = open_.find({e.destination, e.correlation});
      if (it == open_.end()) return;
      span s;
      s.lane = it->second.destination;
      s.group = it->second.sender;
      s.name = "request from " + it->second.sender;
      s.start_us = wall_us(it->second, t0_);
      s.end_us = wall_us(e, t0_);
      s.args = {{"correlation", e.correlation}, {"failed", e.kind == route::failure}};
      spans_.push_back(std::move(s));
      open_.erase(it);
    }
  }
  std::vector<span> finish(std::int64_t end_us) override {
    for (const auto& [k, req] : open_) {
      span s;
      s.lane = req.destination;
      s.group = req.sender;
      s.name = "request from " + req.sender + " (no reply)";
      s.start_us = wall_us(req, t0_);
      s.end_us = std::max(s.start_us, end_us);
      s.complete = false;
      spans_.push_back(std::move(s));
    }
    return std::move(spans_);
  }

 private:
  std::map<std::pair<std::string, std::uint64_t>, envelope> open_;
  std::vector<span> spans_;
  std::int64_t t0_ = 0;
};

// "worker 10" after "worker 9": numbers inside names compare as numbers.
bool lane_less(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    const auto p = s.find_last_not_of("0123456789");
    const std::string head = s.substr(0, p + 1);
    const std::string num = s.substr(p + 1);
    return std::make_pair(head, num.empty() ? -1L : std::stol(num.substr(0, 15)));
  };
  return split(a) < split(b);
}

}  // namespace

std::unique_ptr<span_extractor> serving_task_extractor() { return std::make_unique<serving_tasks>(); }
std::unique_ptr<span_extractor> request_reply_extractor() { return std::make_unique<request_reply>(); }

result<timeline> build_timeline(reader& r) {
  std::vector<std::unique_ptr<span_extractor>> ex;
  ex.push_back(serving_task_extractor());
  ex.push_back(request_reply_extractor());
  r.set_filter({});
  if (auto e = r.seek(0); !e) return e.err();
  while (true) {
    auto n = r.next();
    if (!n) return n.err();
    if (!*n) break;
    for (auto& x : ex) x->see(**n);
  }
  const std::int64_t end_us = (r.idx().last_ns - r.idx().first_ns) / 1000;
  timeline t;
  for (auto& x : ex) {
    t.spans = x->finish(end_us);
    t.source = x->name();
    if (!t.spans.empty()) break;
  }
  for (const auto& s : t.spans)
    if (std::find(t.lanes.begin(), t.lanes.end(), s.lane) == t.lanes.end()) t.lanes.push_back(s.lane);
  std::sort(t.lanes.begin(), t.lanes.end(), lane_less);
  std::stable_sort(t.spans.begin(), t.spans.end(), [&](const span& a, const span& b) {
    if (a.lane != b.lane) return lane_less(a.lane, b.lane);
    return a.start_us < b.start_us;
  });
  return t;
}

std::string to_chrome_trace(const timeline& t) {
  nlohmann::json events = nlohmann::json::array();
  std::map<std::string, int> tid;
  for (std::size_t i = 0; i < t.lanes.size(); ++i) {
    tid[t.lanes[i]] = static_cast<int>(i) + 1;
    events.push_back(
        {{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", i + 1}, {"args", {{"name", t.lanes[i]}}}});
    events.push_back(
        {{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", 1}, {"tid", i + 1}, {"args", {{"sort_index", i}}}});
  }
  events.push_back(
      {{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", "gfdit (" + t.source + ")"}}}});
  for (const auto& s : t.spans) {
    auto args = s.args;
    if (!s.complete) args["incomplete"] = true;
    events.push_back({{"name", s.name},
                      {"cat", s.group},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", tid[s.lane]},
                      {"ts", s.start_us},
                      {"dur", s.end_us - s.start_us},
                      {"args", args}});
  }
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump(1) + "\n";
}

std::string to_svg(const timeline& t, int width) {
  const int left = 120, right = 20, top = 40, row = 22, bottom = 40;
  const int height = top + row * static_cast<int>(std::max<std::size_t>(1, t.lanes.size())) + bottom;
  std::int64_t t0 = 0, t1 = 1;
  if (!t.spans.empty()) {
    t0 = t.spans.front().start_us;
    t1 = t0 + 1;
    for (const auto& s : t.spans) {
      t0 = std::min(t0, s.start_us);
      t1 = std::max(t1, s.end_us);
    }
  }
  const double scale = double(width - left - right) / double(std::max<std::int64_t>(1, t1 - t0));
  std::map<std::string, int> lane_row;
  for (std::size_t i = 0; i < t.lanes.size(); ++i) lane_row[t.lanes[i]] = static_cast<int>(i);
  std::string o;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
                "font-size=\"11\">\n"
                "<defs><pattern id=\"open\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\"><path d=\"M0,6 "
                "L6,0\" stroke=\"#000\" stroke-opacity=\"0.4\"/></pattern></defs>\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"%d\" y=\"20\" font-size=\"14\">gfdit timeline (%s): %zu spans on %zu lanes</text>\n",
                width, height, left, t.source.c_str(), t.spans.size(), t.lanes.size());
  o += buf;
  for (std::size_t i = 0; i < t.lanes.size(); ++i) {
    const int y = top + static_cast<int>(i) * row;
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n<text x=\"6\" y=\"%d\">%s</text>\n",
                  y, width, row, i % 2 ? "#f4f4f4" : "#ffffff", y + 15, xml_escape(t.lanes[i]).c_str());
    o += buf;
  }
  const int axis_y = top + row * static_cast<int>(t.lanes.size()) + 4;
  for (int k = 0; k <= 10; ++k) {
    const double x = left + (width - left - right) * k / 10.0;
    const double ms = (t1 - t0) * k / 10.0 / 1000.0;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ccc\"/>\n<text x=\"%.1f\" y=\"%d\" "
                  "text-anchor=\"middle\">%.1f ms</text>\n",
                  x, top, x, axis_y, x, axis_y + 14, ms);
    o += buf;
  }
  for (const auto& s : t.spans) {
    const double x = left + (s.start_us - t0) * scale;
    const double w = std::max(1.0, (s.end_us - s.start_us) * scale);
    const int y = top + lane_row[s.lane] * row + 3;
    const unsigned hue = static_cast<unsigned>(fnv1a64(s.group) % 360);
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"hsl(%u,65%%,60%%)\" stroke=\"#333\" "
                  "stroke-width=\"0.3\"><title>",
                  x, y, w, row - 6, hue);
    o += buf;
    o += xml_escape(s.name) + " (" + std::to_string(s.start_us) + " .. " + std::to_string(s.end_us) + " us" +
         (s.complete ? "" : ", not finished in the bag") + ")</title></rect>\n";
    if (!s.complete) {
      std::snprintf(buf, sizeof buf, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"url(#open)\"/>\n",
                    x, y, w, row - 6);
      o += buf;
    }
  }
  o += "</svg>\n";
  return o;
}

}  // namespace gfdit::bag
