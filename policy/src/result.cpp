// SPDX-License-Identifier: MIT
// Classification results as JSON and as text (one line, or the explain table).
#include <array>
#include <climits>

#include "internal.hpp"

namespace lfp::policy {

using nlohmann::json;

namespace {

json filter_ref(const Filter* f) {
  if (!f) return nullptr;
  return json{{"id", f->id}, {"key", f->key.str()}, {"name", detail::text_to_json(f->display.name)}};
}

json sublayer_ref(const Sublayer* s) {
  if (!s) return nullptr;
  return json{{"key", s->key.str()}, {"name", detail::text_to_json(s->display.name)}};
}

const char* action_name(bool permit) { return permit ? "PERMIT" : "BLOCK"; }

std::string q(const std::string& s) { return detail::quote(s, SIZE_MAX); }

std::string filter_text(const Filter& f) { return "filter " + std::to_string(f.id) + " " + q(f.display.name) + " {" + f.key.str() + "}"; }

// Characters on screen (UTF-8 code points), for column widths.
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;
  return n;
}

std::string decision_line(const FilterEngine& engine, const ClassifyResult& r) {
  if (!r.filter) return std::string(action_name(r.permit)) + " (no filter matched)";
  std::string s = std::string(action_name(r.permit)) + " (" + (r.veto ? "veto" : r.hard ? "hard" : "soft") + ") by " +
                  filter_text(*r.filter);
  if (r.sublayer) s += " in sublayer " + q(r.sublayer->display.name);
  if (r.filter->provider) {
    s += " of provider ";
    if (const Provider* p = engine.provider(*r.filter->provider)) s += q(p->display.name) + " ";
    s += "{" + r.filter->provider->str() + "}";
  }
  if (r.veto && r.vetoed_filter) s += "; vetoed the hard PERMIT of " + filter_text(*r.vetoed_filter);
  return s;
}

}  // namespace

json result_to_json(const FilterEngine& engine, const ClassifyResult& r) {
  json j{{"action", action_name(r.permit)},
         {"filter", filter_ref(r.filter)},
         {"sublayer", sublayer_ref(r.sublayer)},
         {"provider", r.filter && r.filter->provider ? json(r.filter->provider->str()) : json(nullptr)},
         {"hard", r.hard},
         {"veto", r.veto},
         {"vetoed_filter", filter_ref(r.vetoed_filter)}};
  if (!r.trace.empty()) {
    json ex = json::array();
    for (const SublayerTrace& t : r.trace) {
      json steps = json::array();
      for (const FilterStep& st : t.steps)
        steps.push_back(json{{"filter", filter_ref(st.filter)}, {"outcome", detail::text_to_json(st.outcome)}});
      json e = sublayer_ref(t.sublayer);
      if (e.is_null()) e = json{{"key", nullptr}, {"name", nullptr}};
      e["weight"] = t.sublayer ? json(t.sublayer->weight) : json(nullptr);
      e["steps"] = std::move(steps);
      e["result"] = t.permit ? json(action_name(*t.permit)) : json(nullptr);
      e["hard"] = t.hard;
      e["effect"] = detail::text_to_json(t.effect);
      ex.push_back(std::move(e));
    }
    j["explain"] = std::move(ex);
  }
  return j;
}

std::string result_to_text(const FilterEngine& engine, const ClassifyResult& r) {
  std::string out = decision_line(engine, r);
  if (r.trace.empty()) return out;

  using Row = std::array<std::string, 4>;
  std::vector<Row> rows = {Row{"sublayer", "weight", "filter", "outcome"}};
  for (const SublayerTrace& t : r.trace) {
    const std::string name = t.sublayer ? t.sublayer->display.name : "?";
    const std::string weight = t.sublayer ? std::to_string(t.sublayer->weight) : "";
    if (t.steps.empty()) {
      rows.push_back(Row{name, weight, "-", t.effect});
      continue;
    }
    bool first = true;
    for (const FilterStep& st : t.steps) {
      std::string f = st.filter ? std::to_string(st.filter->id) + " " + q(st.filter->display.name) : "?";
      rows.push_back(Row{first ? name : "", first ? weight : "", f, st.outcome});
      first = false;
    }
    if (t.permit)
      rows.push_back(Row{"", "", std::string("=> ") + action_name(*t.permit) + (t.hard ? " (hard)" : " (soft)"), t.effect});
    else
      rows.push_back(Row{"", "", "=>", t.effect});
  }
  std::array<size_t, 4> w{};
  for (const Row& row : rows)
    for (size_t c = 0; c < 4; ++c) w[c] = std::max(w[c], width(row[c]));
  for (const Row& row : rows) {
    std::string line;
    for (size_t c = 0; c < 4; ++c) {
      const size_t pad = w[c] - width(row[c]);
      if (c == 1) line += std::string(pad, ' ') + row[c];  // weights right-aligned
      else line += row[c] + (c < 3 ? std::string(pad, ' ') : "");
      if (c < 3) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += "\n" + line;
  }
  return out;
}

}  // namespace lfp::policy
