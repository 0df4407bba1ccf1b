#include "kernels/train/membership.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>

#include "common/text.hpp"
#include "kernels/train/reduce.hpp"

namespace gfdit::train {
namespace {

// The next whitespace- or comma-separated word of `s`, consumed.
std::string_view next_word(std::string_view& s) {
  auto sep = [](char c) { return c == ' ' || c == '\t' || c == ',' || c == '\r'; };
  while (!s.empty() && sep(s.front())) s.remove_prefix(1);
  std::size_t n = 0;
  while (n < s.size() && !sep(s[n])) ++n;
  auto w = s.substr(0, n);
  s.remove_prefix(n);
  return w;
}

template <typename T>
bool parse_number(std::string_view w, T& out) {
  auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), out);
  return ec == std::errc{} && p == w.data() + w.size();
}

}  // namespace

result<std::vector<membership_change>> parse_membership(std::string_view text, int pool, int batch) {
  std::vector<membership_change> plan;
  int line_no = 0;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++line_no;
    auto fail = [&](const std::string& what) {
      return make_error(errc::invalid_argument, "members line " + std::to_string(line_no) + ": " + what);
    };
    if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    membership_change c;
    bool has_step = false;
    if (const auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view head = line.substr(0, colon);
      const auto w = next_word(head);
      if (!parse_number(w, c.from_step) || c.from_step < 1 || !next_word(head).empty())
        return fail("'" + std::string(line.substr(0, colon)) + "' is not a step (a number from 1)");
      line.remove_prefix(colon + 1);
      has_step = true;
    }
    for (auto w = next_word(line); !w.empty(); w = next_word(line)) {
      std::int32_t r = 0;
      if (!parse_number(w, r)) return fail("'" + std::string(w.substr(0, 32)) + "' is not a rank");
      if (r < 0 || r >= pool)
        return fail("rank " + std::to_string(r) + " is not in the pool (ranks 0 to " + std::to_string(pool - 1) + ")");
      if (std::find(c.members.begin(), c.members.end(), r) != c.members.end())
        return fail("rank " + std::to_string(r) + " is named twice");
      c.members.push_back(r);
    }
    if (c.members.empty()) {
      if (has_step) return fail("no ranks");
      continue;  // a blank or comment line
    }
    if (std::find(c.members.begin(), c.members.end(), 0) == c.members.end())
      return fail("rank 0 must take part (it writes the checkpoints)");
    if (!tree_splits(batch, static_cast<int>(c.members.size())))
      return fail(std::to_string(c.members.size()) + " workers cannot split a global batch of " +
                  std::to_string(batch));
    std::sort(c.members.begin(), c.members.end());
    plan.push_back(std::move(c));
  }
  return plan;
}

std::vector<std::int32_t> members_at(const std::vector<membership_change>& plan, std::int64_t step, int pool) {
  for (auto it = plan.rbegin(); it != plan.rend(); ++it)
    if (it->from_step <= step) return it->members;
  std::vector<std::int32_t> all(static_cast<std::size_t>(pool));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

std::vector<std::int32_t> members_file::members(std::int64_t step) {
  std::error_code ec;
  if (!file_.empty() && std::filesystem::exists(file_, ec)) {
    auto text = read_text(file_, 64u << 10);
    if (!text) {
      refuse(text.err().what);
    } else if (*text != seen_) {
      seen_ = *text;
      auto plan = parse_membership(*text, pool_, batch_);
      if (plan)
        plan_ = std::move(*plan);
      else
        refuse(file_.string() + ": " + plan.err().what + " (the run goes on with the ranks it had)");
    }
  }
  return members_at(plan_, step, pool_);
}

void members_file::refuse(const std::string& why) {
  if (why != refused_ && note_) note_(why);
  refused_ = why;
}

std::string ranks_text(const std::vector<std::int32_t>& ranks) {
  std::string s;
  for (auto r : ranks) {
    if (!s.empty()) s += ' ';
    s += std::to_string(r);
  }
  return s;
}

result<void> write_membership(const std::filesystem::path& file, const std::vector<std::int32_t>& members) {
  return write_text_atomically(file, ranks_text(members) + "\n");
}

}  // namespace gfdit::train
