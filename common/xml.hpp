#pragma once
// Text placed in XML or SVG (a chart's title, a lane's name): the five characters that would
// end a tag or an attribute, escaped.
#include <string>
#include <string_view>

namespace gfdit {

inline std::string xml_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&apos;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

}  // namespace gfdit
