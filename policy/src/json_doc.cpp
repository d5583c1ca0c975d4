// SPDX-License-Identifier: MIT
// The arena JSON document (lfp/policy/json_doc.hpp): a recursive-descent parser with a depth limit.
#include "lfp/policy/json_doc.hpp"
#include "lfp/policy/utf8.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace lfp::policy {

const JsonValue* JsonValue::find(std::string_view key) const {
  if (type_ != Type::OBJECT) return nullptr;
  for (size_t i = n_; i-- > 0;)  // the last of a repeated member, as nlohmann keeps it
    if (mems_[i].key == key) return &mems_[i].value;
  return nullptr;
}

nlohmann::json JsonValue::to_json() const {
  using nlohmann::json;
  switch (type_) {
    case Type::NUL:
    case Type::OPAQUE: return nullptr;
    case Type::BOOLEAN: return b_;
    case Type::INTEGER: return i_;
    case Type::UNSIGNED: return u_;
    case Type::FLOAT: return d_;
    case Type::STRING: return std::string(s_, n_);
    case Type::ARRAY: {
      json a = json::array();
      a.get_ref<json::array_t&>().reserve(n_);
      for (size_t i = 0; i < n_; ++i) a.push_back(elems_[i].to_json());
      return a;
    }
    case Type::OBJECT: {
      json o = json::object();
      for (size_t i = 0; i < n_; ++i) o[std::string(mems_[i].key)] = mems_[i].value.to_json();
      return o;
    }
  }
  return nullptr;
}

JsonDoc::~JsonDoc() = default;

void* JsonDoc::allocate(size_t bytes) {
  bytes = (bytes + 7) & ~size_t{7};
  if (bytes > left_) {
    const size_t block = std::max(bytes, next_block_);
    next_block_ = std::min<size_t>(next_block_ * 2, size_t{1} << 20);
    blocks_.push_back(std::unique_ptr<std::byte[]>(new std::byte[block]));  // not zeroed
    cur_ = blocks_.back().get();
    left_ = block;
  }
  void* p = cur_;
  cur_ += bytes;
  left_ -= bytes;
  return p;
}

void JsonDoc::rewind(const Mark& m) {
  blocks_.resize(m.blocks);
  cur_ = m.cur;
  left_ = m.left;
}

// Builds a document's values: from text (parse) or from a nlohmann::json (view).
class JsonBuilder {
 public:
  JsonBuilder(JsonDoc& doc, size_t max_depth, JsonStream* stream = nullptr)
      : doc_(doc), max_depth_(max_depth), stream_(stream) {}

  void parse() {
    const std::string& t = doc_.text_;
    begin_ = p_ = t.data();
    end_ = begin_ + t.size();
    if (end_ - p_ >= 3 && std::memcmp(p_, "\xEF\xBB\xBF", 3) == 0) p_ += 3;  // a UTF-8 byte order mark
    skip_ws();
    value(doc_.root_, 0);
    skip_ws();
    if (p_ != end_) error("unexpected text after the JSON value; expected the end of input");
  }

  void view(const nlohmann::json& j) { view_value(doc_.root_, j, 0); }

 private:
  using Type = JsonValue::Type;

  [[noreturn]] void error(const std::string& what) const {
    const size_t off = static_cast<size_t>(p_ - begin_);
    size_t line = 1, col = 1;
    for (const char* q = begin_; q < p_; ++q) {
      if (*q == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw JsonParseError("syntax error at line " + std::to_string(line) + ", column " + std::to_string(col) +
                             " (byte " + std::to_string(off) + "): " + what,
                         off);
  }
  std::string found() const {
    if (p_ == end_) return "the end of input";
    const unsigned char c = static_cast<unsigned char>(*p_);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
  }

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  void literal(const char* word, size_t n) {
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0)
      error("invalid literal; expected '" + std::string(word, n) + "'");
    p_ += n;
  }

  void value(JsonValue& v, size_t depth) {
    const char* start = p_;
    if (p_ == end_) error("unexpected the end of input; expected a value");
    switch (*p_) {
      case '{': object(v, depth); break;
      case '[': array(v, depth); break;
      case '"':
        v.type_ = Type::STRING;
        string(v.s_, v.n_);
        break;
      case 't':
        literal("true", 4);
        v.type_ = Type::BOOLEAN;
        v.b_ = true;
        break;
      case 'f':
        literal("false", 5);
        v.type_ = Type::BOOLEAN;
        v.b_ = false;
        break;
      case 'n':
        literal("null", 4);
        v.type_ = Type::NUL;
        break;
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) {
          number(v);
          break;
        }
        error("unexpected " + found() + "; expected a value");
    }
    v.text_ = start;
    v.text_len_ = static_cast<size_t>(p_ - start);
  }

  void enter(size_t depth) {
    if (depth >= max_depth_) error("containers nested deeper than " + std::to_string(max_depth_) + " levels");
  }

  void object(JsonValue& v, size_t depth) {
    enter(depth);
    ++p_;  // '{'
    const size_t first = mems_.size();
    skip_ws();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
    } else {
      for (;;) {
        if (p_ == end_ || *p_ != '"') error("unexpected " + found() + "; expected a member name (a string)");
        const char* key;
        uint32_t key_len;
        string(key, key_len);
        skip_ws();
        if (p_ == end_ || *p_ != ':') error("unexpected " + found() + "; expected ':'");
        ++p_;
        skip_ws();
        JsonValue child;
        if (stream_ && depth == 0) {
          root_member_ = std::string_view(key, key_len);
          value(child, depth + 1);
          root_member_ = {};
          stream_->member(std::string_view(key, key_len), child);
        } else {
          value(child, depth + 1);
        }
        mems_.push_back({std::string_view(key, key_len), child});
        skip_ws();
        if (p_ != end_ && *p_ == ',') {
          ++p_;
          skip_ws();
          continue;
        }
        if (p_ != end_ && *p_ == '}') {
          ++p_;
          break;
        }
        error("unexpected " + found() + "; expected ',' or '}'");
      }
    }
    const size_t n = mems_.size() - first;
    auto* out = static_cast<JsonValue::Member*>(doc_.allocate(n * sizeof(JsonValue::Member)));
    for (size_t i = 0; i < n; ++i) new (&out[i]) JsonValue::Member(mems_[first + i]);
    mems_.resize(first);
    v.type_ = Type::OBJECT;
    v.mems_ = out;
    v.n_ = static_cast<uint32_t>(n);
  }

  void array(JsonValue& v, size_t depth) {
    enter(depth);
    ++p_;  // '['
    const size_t first = elems_.size();
    // A root member's elements go to the stream, each as soon as it is whole, and are not kept.
    const std::string_view streamed = depth == 1 ? std::exchange(root_member_, {}) : std::string_view();
    size_t index = 0;
    skip_ws();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
    } else {
      for (;;) {
        JsonValue child;
        if (streamed.data()) {
          const JsonDoc::Mark m = doc_.mark();
          value(child, depth + 1);
          stream_->element(streamed, index++, child);
          doc_.rewind(m);
        } else {
          value(child, depth + 1);
          elems_.push_back(child);
        }
        skip_ws();
        if (p_ != end_ && *p_ == ',') {
          ++p_;
          skip_ws();
          continue;
        }
        if (p_ != end_ && *p_ == ']') {
          ++p_;
          break;
        }
        error("unexpected " + found() + "; expected ',' or ']'");
      }
    }
    const size_t n = elems_.size() - first;
    auto* out = static_cast<JsonValue*>(doc_.allocate(n * sizeof(JsonValue)));
    for (size_t i = 0; i < n; ++i) new (&out[i]) JsonValue(elems_[first + i]);
    elems_.resize(first);
    v.type_ = Type::ARRAY;
    v.elems_ = out;
    v.n_ = static_cast<uint32_t>(n);
  }

  // The length of a valid UTF-8 sequence starting at p (a lead byte >= 0x80), or 0.
  size_t utf8_len(const char* p) const {
    return utf8_sequence_length(reinterpret_cast<const unsigned char*>(p), static_cast<size_t>(end_ - p));
  }

  unsigned hex4() {
    if (end_ - p_ < 4) error("incomplete \\u escape; expected four hex digits");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = p_[i];
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else error("bad \\u escape; expected four hex digits");
      v = v << 4 | d;
    }
    p_ += 4;
    return v;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | cp >> 6);
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | cp >> 12);
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | cp >> 18);
      out += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // A string at p_ ('"'): its bytes, pointing into the text, or into the arena when unescaped.
  void string(const char*& out, uint32_t& len) {
    ++p_;  // '"'
    const char* start = p_;
    // Fast path: printable ASCII and valid UTF-8 up to the closing quote; 8 bytes at a time
    // while none is a quote, a backslash, a control byte or above 0x7f.
    for (;;) {
      while (end_ - p_ >= 8) {
        uint64_t x;
        std::memcpy(&x, p_, 8);
        constexpr uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
        auto zero_byte = [&](uint64_t v) { return (v - ones) & ~v & highs; };
        const uint64_t special = zero_byte(x ^ (ones * '"')) | zero_byte(x ^ (ones * '\\')) |
                                 ((x - ones * 0x20) & ~x & highs) | (x & highs);
        if (special) break;
        p_ += 8;
      }
      if (p_ == end_) error("unterminated string; expected '\"'");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out = start;
        len = static_cast<uint32_t>(p_ - start);
        ++p_;
        return;
      }
      if (c == '\\') break;
      if (c < 0x20) error("control character " + found() + " in a string; expected it escaped");
      if (c < 0x80) {
        ++p_;
        continue;
      }
      const size_t n = utf8_len(p_);
      if (!n) error("invalid UTF-8 " + found() + " in a string");
      p_ += n;
    }
    // Escapes: decode into scratch, then copy into the arena.
    scratch_.assign(start, p_);
    for (;;) {
      if (p_ == end_) error("unterminated string; expected '\"'");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        break;
      }
      if (c == '\\') {
        ++p_;
        if (p_ == end_) error("unterminated string; expected '\"'");
        const char e = *p_++;
        switch (e) {
          case '"': scratch_ += '"'; break;
          case '\\': scratch_ += '\\'; break;
          case '/': scratch_ += '/'; break;
          case 'b': scratch_ += '\b'; break;
          case 'f': scratch_ += '\f'; break;
          case 'n': scratch_ += '\n'; break;
          case 'r': scratch_ += '\r'; break;
          case 't': scratch_ += '\t'; break;
          case 'u': {
            unsigned cp = hex4();
            if (cp >= 0xdc00 && cp <= 0xdfff) error("a low surrogate \\u escape without a high one");
            if (cp >= 0xd800 && cp <= 0xdbff) {
              if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
                error("a high surrogate \\u escape must be followed by a low one");
              p_ += 2;
              const unsigned lo = hex4();
              if (lo < 0xdc00 || lo > 0xdfff) error("a high surrogate \\u escape must be followed by a low one");
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(scratch_, cp);
            break;
          }
          default: --p_; error("bad escape " + found() + " in a string");
        }
        continue;
      }
      if (c < 0x20) error("control character " + found() + " in a string; expected it escaped");
      if (c < 0x80) {
        scratch_ += static_cast<char>(c);
        ++p_;
        continue;
      }
      const size_t n = utf8_len(p_);
      if (!n) error("invalid UTF-8 " + found() + " in a string");
      scratch_.append(p_, n);
      p_ += n;
    }
    if (scratch_.size() > UINT32_MAX) error("string too long");
    char* mem = static_cast<char*>(doc_.allocate(scratch_.size() + 1));
    std::memcpy(mem, scratch_.data(), scratch_.size());
    out = mem;
    len = static_cast<uint32_t>(scratch_.size());
  }

  void number(JsonValue& v) {
    const char* start = p_;
    const bool neg = *p_ == '-';
    if (neg) ++p_;
    auto digit = [&] { return p_ != end_ && *p_ >= '0' && *p_ <= '9'; };
    if (!digit()) error("bad number: expected a digit after '-'");
    if (*p_ == '0') {
      ++p_;
    } else {
      while (digit()) ++p_;
    }
    bool is_float = false;
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (!digit()) error("bad number: expected a digit after '.'");
      while (digit()) ++p_;
      is_float = true;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digit()) error("bad number: expected a digit in the exponent");
      while (digit()) ++p_;
      is_float = true;
    }
    if (!is_float) {
      if (neg) {
        int64_t x;
        auto [q, ec] = std::from_chars(start, p_, x);
        if (ec == std::errc() && q == p_) {
          v.type_ = Type::INTEGER;
          v.i_ = x;
          return;
        }
      } else {
        uint64_t x;
        auto [q, ec] = std::from_chars(start, p_, x);
        if (ec == std::errc() && q == p_) {
          v.type_ = Type::UNSIGNED;
          v.u_ = x;
          return;
        }
      }
    }
    // A fraction, an exponent, or an integer too large: a double (as nlohmann keeps it).
    double d = 0;
    auto [q, ec] = std::from_chars(start, p_, d);
    if (ec == std::errc::result_out_of_range) {
      d = std::strtod(std::string(start, p_).c_str(), nullptr);  // an underflow is 0, as nlohmann reads it
      if (std::isinf(d)) error("number overflow: " + std::string(start, p_));
    } else if (ec != std::errc() || q != p_) {
      error("bad number");
    }
    v.type_ = Type::FLOAT;
    v.d_ = d;
  }

  void view_value(JsonValue& v, const nlohmann::json& j, size_t depth) {
    using T = nlohmann::json::value_t;
    switch (j.type()) {
      case T::null: v.type_ = Type::NUL; return;
      case T::boolean:
        v.type_ = Type::BOOLEAN;
        v.b_ = j.get<bool>();
        return;
      case T::number_integer:
        v.type_ = Type::INTEGER;
        v.i_ = j.get<int64_t>();
        return;
      case T::number_unsigned:
        v.type_ = Type::UNSIGNED;
        v.u_ = j.get<uint64_t>();
        return;
      case T::number_float:
        v.type_ = Type::FLOAT;
        v.d_ = j.get<double>();
        return;
      case T::string: {
        const auto& s = j.get_ref<const std::string&>();
        v.type_ = Type::STRING;
        v.s_ = s.data();
        v.n_ = static_cast<uint32_t>(std::min<size_t>(s.size(), UINT32_MAX));
        return;
      }
      case T::array: {
        if (depth >= max_depth_) break;
        auto* out = static_cast<JsonValue*>(doc_.allocate(j.size() * sizeof(JsonValue)));
        size_t i = 0;
        for (const auto& e : j) view_value(*new (&out[i++]) JsonValue(), e, depth + 1);
        v.type_ = Type::ARRAY;
        v.elems_ = out;
        v.n_ = static_cast<uint32_t>(j.size());
        return;
      }
      case T::object: {
        if (depth >= max_depth_) break;
        auto* out = static_cast<JsonValue::Member*>(doc_.allocate(j.size() * sizeof(JsonValue::Member)));
        size_t i = 0;
        for (auto it = j.begin(); it != j.end(); ++it) {
          auto* m = new (&out[i++]) JsonValue::Member();
          m->key = it.key();
          view_value(m->value, it.value(), depth + 1);
        }
        v.type_ = Type::OBJECT;
        v.mems_ = out;
        v.n_ = static_cast<uint32_t>(j.size());
        return;
      }
      default: break;
    }
    v.type_ = Type::OPAQUE;
  }

  JsonDoc& doc_;
  size_t max_depth_;
  JsonStream* stream_;
  const char* begin_ = nullptr;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
  std::vector<JsonValue> elems_;           // children of the open arrays
  std::vector<JsonValue::Member> mems_;    // members of the open objects
  std::string_view root_member_;  // with a stream: the root object's member whose value is being parsed
  std::string scratch_;
};

std::unique_ptr<JsonDoc> JsonDoc::parse(std::string text, size_t max_depth) {
  std::unique_ptr<JsonDoc> d(new JsonDoc());
  d->text_ = std::move(text);
  JsonBuilder(*d, max_depth).parse();
  return d;
}

std::unique_ptr<JsonDoc> JsonDoc::parse(std::string text, JsonStream& stream, size_t max_depth) {
  std::unique_ptr<JsonDoc> d(new JsonDoc());
  d->text_ = std::move(text);
  JsonBuilder(*d, max_depth, &stream).parse();
  return d;
}

std::unique_ptr<JsonDoc> JsonDoc::view(const nlohmann::json& j, size_t max_depth) {
  std::unique_ptr<JsonDoc> d(new JsonDoc());
  JsonBuilder(*d, max_depth).view(j);
  return d;
}

std::unique_ptr<JsonDoc> JsonDoc::without(const JsonValue& obj, std::initializer_list<std::string_view> names) {
  std::unique_ptr<JsonDoc> d(new JsonDoc());
  d->root_ = obj;
  if (!obj.is_object()) return d;
  auto* out = static_cast<JsonValue::Member*>(d->allocate(obj.size() * sizeof(JsonValue::Member)));
  uint32_t n = 0;
  for (auto it = obj.members_begin(); it != obj.members_end(); ++it) {
    bool drop = false;
    for (auto name : names) drop = drop || it->key == name;
    if (!drop) new (&out[n++]) JsonValue::Member(*it);
  }
  d->root_.mems_ = out;
  d->root_.n_ = n;
  return d;
}

}  // namespace lfp::policy
