// SPDX-License-Identifier: MIT
#pragma once
// A read-only JSON document parsed in one pass into an arena: strings point into the text wherever
// they need no unescaping, every value keeps the span of text it was parsed from, and freeing the
// document is freeing a few blocks. lfpd parses its requests with it (a 10k-filter policy in a few
// milliseconds), and the policy readers read it (policy_from_json).
//
// The parser accepts exactly RFC 8259 JSON, as nlohmann::json::parse does (UTF-8 checked, no
// trailing garbage, a leading UTF-8 byte order mark skipped), with one addition: containers nested
// deeper than a limit are refused. An object may repeat a member; find() returns the last, as
// nlohmann keeps the last.
//
// It is the one reader of JSON text on the request path (nlohmann is the document type everywhere
// else). The libraries that could stand in its place are measured against it by lfp-json-bench;
// why it stays for now is in docs/lfpd.md "Reading JSON".

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lfp::policy {

class JsonValue {
 public:
  // INTEGER: a signed integer (a negative number in JSON text); UNSIGNED: a non-negative one;
  // FLOAT: any other number. OPAQUE: what a reader cannot look into (nlohmann's binary values,
  // containers nested too deeply when viewing a nlohmann::json).
  enum class Type : uint8_t { NUL, BOOLEAN, INTEGER, UNSIGNED, FLOAT, STRING, ARRAY, OBJECT, OPAQUE };
  struct Member;

  JsonValue() : u_(0) {}
  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::NUL; }
  bool is_boolean() const { return type_ == Type::BOOLEAN; }
  bool is_number() const { return type_ == Type::INTEGER || type_ == Type::UNSIGNED || type_ == Type::FLOAT; }
  bool is_number_integer() const { return type_ == Type::INTEGER || type_ == Type::UNSIGNED; }
  bool is_number_unsigned() const { return type_ == Type::UNSIGNED; }
  bool is_number_float() const { return type_ == Type::FLOAT; }
  bool is_string() const { return type_ == Type::STRING; }
  bool is_array() const { return type_ == Type::ARRAY; }
  bool is_object() const { return type_ == Type::OBJECT; }

  bool boolean() const { return b_; }
  int64_t integer() const { return type_ == Type::UNSIGNED ? static_cast<int64_t>(u_) : i_; }
  uint64_t unsigned_value() const { return type_ == Type::INTEGER ? static_cast<uint64_t>(i_) : u_; }
  double number() const {
    return type_ == Type::FLOAT ? d_ : type_ == Type::INTEGER ? static_cast<double>(i_) : static_cast<double>(u_);
  }
  std::string_view str() const { return type_ == Type::STRING ? std::string_view(s_, n_) : std::string_view(); }
  // A non-negative integer (UNSIGNED, or INTEGER >= 0) into `out`; false for anything else.
  bool get_uint(uint64_t& out) const {
    if (type_ == Type::UNSIGNED || (type_ == Type::INTEGER && i_ >= 0)) {
      out = u_;
      return true;
    }
    return false;
  }

  // Arrays: elements; objects: members; 0 for anything else.
  size_t size() const { return type_ == Type::ARRAY || type_ == Type::OBJECT ? n_ : 0; }
  bool empty() const { return size() == 0; }
  const JsonValue& operator[](size_t i) const { return elems_[i]; }  // an array's element
  const JsonValue* begin() const { return type_ == Type::ARRAY ? elems_ : nullptr; }
  const JsonValue* end() const { return type_ == Type::ARRAY ? elems_ + n_ : nullptr; }
  const Member* members_begin() const { return type_ == Type::OBJECT ? mems_ : nullptr; }
  const Member* members_end() const;
  // An object's member (the last of that name), or null.
  const JsonValue* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  // The JSON text the value was parsed from (empty when it was not parsed from text).
  std::string_view text() const { return std::string_view(text_, text_len_); }
  // The value as nlohmann::json (a copy). OPAQUE values become null.
  nlohmann::json to_json() const;
  // The value as compact JSON text (for messages).
  std::string dump() const { return to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

 private:
  friend class JsonDoc;
  friend class JsonBuilder;
  Type type_ = Type::NUL;
  bool b_ = false;
  uint32_t n_ = 0;  // string bytes, array elements, object members
  union {
    int64_t i_;
    uint64_t u_;
    double d_;
    const char* s_;
    const JsonValue* elems_;
    const Member* mems_;
  };
  const char* text_ = nullptr;
  size_t text_len_ = 0;
};

struct JsonValue::Member {
  std::string_view key;
  JsonValue value;
};
inline const JsonValue::Member* JsonValue::members_end() const { return type_ == Type::OBJECT ? mems_ + n_ : nullptr; }

// Malformed JSON: what() says what was expected and where (byte offset, line and column).
class JsonParseError : public std::runtime_error {
 public:
  JsonParseError(const std::string& what, size_t offset) : std::runtime_error(what), offset_(offset) {}
  size_t offset() const { return offset_; }

 private:
  size_t offset_;
};

// A reader that acts on a large document's objects while the rest is parsed (lfp apply sends a
// million filters to lfpd as they are parsed). Called on the parsing thread, in text order: element()
// with each element of an array that is a member of the root object, as soon as the element is whole
// (the element is then not kept in the document: the array is left empty); member() with each member
// of the root object once its value is whole. Values point into the document's text, which does not
// move; their own parts live only for the call. An exception thrown here ends the parse.
class JsonStream {
 public:
  virtual ~JsonStream() = default;
  virtual void element(std::string_view member, size_t index, const JsonValue& element) = 0;
  virtual void member(std::string_view key, const JsonValue& value) = 0;
};

class JsonDoc {
 public:
  static constexpr size_t kMaxDepth = 256;

  // Parses `text` (kept by the document: values point into it). Throws JsonParseError.
  static std::unique_ptr<JsonDoc> parse(std::string text, size_t max_depth = kMaxDepth);
  // The same, handing the root object's members and their arrays' elements to `stream` as they are parsed.
  static std::unique_ptr<JsonDoc> parse(std::string text, JsonStream& stream, size_t max_depth = kMaxDepth);
  // A view of a nlohmann::json, which must outlive the document (strings point into it).
  // Containers below max_depth levels become OPAQUE.
  static std::unique_ptr<JsonDoc> view(const nlohmann::json& j, size_t max_depth = 64);
  // An object without the members named (its values still point where those of `obj` do, so
  // `obj`'s document must outlive this one).
  static std::unique_ptr<JsonDoc> without(const JsonValue& obj, std::initializer_list<std::string_view> names);

  const JsonValue& root() const { return root_; }
  const std::string& text() const { return text_; }

  JsonDoc(const JsonDoc&) = delete;
  JsonDoc& operator=(const JsonDoc&) = delete;
  ~JsonDoc();

 private:
  friend class JsonBuilder;
  JsonDoc() = default;
  void* allocate(size_t bytes);
  // Where the arena stands, and back to it (what was allocated since is freed).
  struct Mark {
    size_t blocks;
    std::byte* cur;
    size_t left;
  };
  Mark mark() const { return {blocks_.size(), cur_, left_}; }
  void rewind(const Mark& m);

  std::string text_;
  JsonValue root_;
  std::vector<std::unique_ptr<std::byte[]>> blocks_;
  std::byte* cur_ = nullptr;
  size_t left_ = 0;
  size_t next_block_ = 2048;
};

}  // namespace lfp::policy
