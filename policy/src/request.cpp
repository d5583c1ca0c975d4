// SPDX-License-Identifier: MIT
// Classify requests: field values from command-line text or a requests file's JSON.
#include "internal.hpp"

namespace lfp::policy {

using detail::at;
using detail::fail;
using nlohmann::json;

namespace {

// The field's type at the request's layer; throws when the layer does not offer it.
DataType checked_type(LayerId layer, FieldId field, const std::string& path) {
  if (static_cast<size_t>(layer) >= kLayerCount) fail(path, "LAYER_NOT_FOUND: the request's layer is not valid");
  if (static_cast<size_t>(field) >= kFieldCount) fail(path, "unknown field");
  const LayerInfo& l = layer_info(layer);
  if (!layer_has_field(l, field))
    fail(path, "field " + std::string(field_name(field)) + " is not available at layer " + std::string(l.name) +
                   " (see `lfp layers`)");
  return field_type(field, l.family);
}

}  // namespace

void Request::clear() {
  values.clear();
  expect.reset();
  strings_.clear();
  tokens_.clear();
}

void Request::set_text(FieldId field, std::string_view text) {
  const std::string path(field_name(field));
  const DataType t = checked_type(layer, field, path);
  if (t == DataType::TOKEN_INFORMATION_TYPE) {
    tokens_.push_back(std::make_unique<Token>(detail::token_from_text(text, path)));
    values.set(field, Value::user(*tokens_.back()));
    return;
  }
  OwnedValue v = detail::plain_from_text(field, t, text, path);
  strings_.push_back(std::make_unique<std::string>(std::move(v.str)));
  Value view{v.type, v.u, v.bytes};
  view.str = *strings_.back();
  values.set(field, view);
}

void Request::set_json(FieldId field, const json& j, const std::string& path) {
  set_json(field, JsonDoc::view(j)->root(), path);
}

void Request::set_json(FieldId field, const JsonValue& j, const std::string& path) {
  const DataType t = checked_type(layer, field, path);
  if (j.is_null()) {
    values.set(field, Value{});  // EMPTY: the field's value is unknown
    return;
  }
  if (t == DataType::TOKEN_INFORMATION_TYPE) {
    tokens_.push_back(std::make_unique<Token>(detail::token_from_json(j, path)));
    values.set(field, Value::user(*tokens_.back()));
    return;
  }
  OwnedValue v = detail::plain_from_json(field, t, j, path);
  strings_.push_back(std::make_unique<std::string>(std::move(v.str)));
  Value view{v.type, v.u, v.bytes};
  view.str = *strings_.back();
  values.set(field, view);
}

void parse_request(const json& j, Request& out) { parse_request(JsonDoc::view(j)->root(), out); }

void parse_request(const JsonValue& j, Request& out) {
  try {
    static const std::string root;
    detail::Members m(j, root, "a request", {"layer", "values", "expect", "comment"});
    const JsonValue* l = m.get("layer");
    if (!l) fail(m.path("layer"), "required member missing (the layer to classify at, e.g. ALE_AUTH_CONNECT_V4)");
    const LayerId layer = detail::layer_from_json(*l, m.path("layer"));
    out.clear();
    out.layer = layer;
    if (const JsonValue* e = m.get("expect")) {
      if (!e->is_string() || (e->str() != "PERMIT" && e->str() != "BLOCK"))
        fail(m.path("expect"), "expected \"PERMIT\" or \"BLOCK\"");
      out.expect = std::string(e->str());
    }
    if (const JsonValue* c = m.get("comment"); c && !c->is_string())
      fail(m.path("comment"), "expected a string, got " + detail::kind_of(*c));
    if (const JsonValue* v = m.get("values")) {
      if (!v->is_object()) fail(m.path("values"), "expected an object {\"FIELD\": value, ...}, got " + detail::kind_of(*v));
      for (auto it = v->members_begin(); it != v->members_end(); ++it) {
        const std::string path = at(m.path("values"), it->key);
        auto field = field_from_string(it->key);
        if (!field) fail(path, "unknown field " + detail::quote(it->key) + " (see `lfp layers`)");
        out.set_json(*field, it->value, path);
      }
    }
  } catch (const json::exception& e) {  // not expected: every access is checked first
    fail("", std::string("invalid request: ") + e.what());
  }
}

}  // namespace lfp::policy
