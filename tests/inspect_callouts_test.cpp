// SPDX-License-Identifier: MIT
// The built-in inspection callouts (callouts/builtin/): their parsers on real-format data (a
// ClientHello openssl s_client sent, split at every byte and over several records; HTTP requests in
// segments; DNS queries with compressed and malformed names), and the plugin itself, dlopened and
// called through lfp_callout_plugin_v2 with crafted classify structs.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lfp/callout/plugin.hpp"
#include "parsers.hpp"

namespace lfp::test {
namespace {

using namespace lfp::inspect;
using nlohmann::json;
using Buf = std::vector<uint8_t>;

Buf read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Buf(std::istreambuf_iterator<char>(f), {});
}
Buf bytes(std::string_view s) { return Buf(s.begin(), s.end()); }
Bytes span(const Buf& b, size_t n) { return Bytes(b.data(), n); }

// `openssl s_client -servername x.test -connect 127.0.0.1:PORT`'s first segment: one TLS record
// holding a TLS 1.3 ClientHello.
Buf openssl_hello() {
  const Buf b = read_file(LFP_SOURCE_DIR "/tests/data/inspect/client_hello_x.test.bin");
  EXPECT_EQ(b.size(), 312u);
  return b;
}

void put16(Buf& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// A ClientHello built byte by byte: handshake header, body (version, random, session id, suites,
// compression, extensions), wrapped in one record; `hosts` go in one server_name extension.
Buf handshake(const std::vector<std::string>& hosts, bool with_sni = true) {
  Buf body = {0x03, 0x03};
  body.insert(body.end(), 32, 0xAB);  // random
  body.push_back(0);                  // session id
  put16(body, 4);                     // two cipher suites
  body.insert(body.end(), {0x13, 0x01, 0xC0, 0x2F});
  body.insert(body.end(), {1, 0});    // compression: null
  Buf exts;
  put16(exts, 0x000A);                // supported_groups, before the SNI
  put16(exts, 4);
  exts.insert(exts.end(), {0, 2, 0, 0x1D});
  if (with_sni) {
    Buf list;
    for (const auto& h : hosts) {
      list.push_back(0);
      put16(list, h.size());
      list.insert(list.end(), h.begin(), h.end());
    }
    put16(exts, 0);
    put16(exts, list.size() + 2);
    put16(exts, list.size());
    exts.insert(exts.end(), list.begin(), list.end());
  }
  put16(exts, 0x002B);                // supported_versions, after it
  put16(exts, 3);
  exts.insert(exts.end(), {2, 3, 4});
  put16(body, exts.size());
  body.insert(body.end(), exts.begin(), exts.end());
  Buf hs = {1, 0, static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
  hs.insert(hs.end(), body.begin(), body.end());
  return hs;
}
// The handshake bytes in records of at most `fragment` bytes each.
Buf records(const Buf& hs, size_t fragment = 16384) {
  Buf out;
  for (size_t at = 0; at < hs.size(); at += fragment) {
    const size_t n = std::min(fragment, hs.size() - at);
    out.insert(out.end(), {22, 3, 1});
    put16(out, n);
    out.insert(out.end(), hs.begin() + static_cast<long>(at), hs.begin() + static_cast<long>(at + n));
  }
  return out;
}
// The handshake bytes of a one-record capture.
Buf handshake_of(const Buf& record) { return Buf(record.begin() + 5, record.end()); }

// ---- TLS ------------------------------------------------------------------------------------------

TEST(InspectTls, ReadsTheSniOfARealClientHello) {
  const Buf b = openssl_hello();
  const TlsHello h = parse_tls_client_hello(b);
  ASSERT_EQ(h.status, Parse::COMPLETE);
  EXPECT_EQ(h.names, std::vector<std::string>{"x.test"});
  EXPECT_EQ(h.legacy_version, 0x0303);
}

TEST(InspectTls, EveryPrefixNeedsExactlyTheBytesLeft) {
  const Buf b = openssl_hello();
  for (size_t n = 0; n < b.size(); ++n) {
    const TlsHello h = parse_tls_client_hello(span(b, n));
    ASSERT_EQ(h.status, Parse::INCOMPLETE) << n;
    ASSERT_GE(h.need, 1u) << n;
    if (n >= 5) ASSERT_EQ(n + h.need, b.size()) << n;  // the record's length is known
    else ASSERT_LE(n + h.need, b.size()) << n;
  }
  EXPECT_EQ(parse_tls_client_hello(b).status, Parse::COMPLETE);
}

TEST(InspectTls, AClientHelloOverSeveralRecords) {
  for (size_t fragment : {1u, 7u, 100u, 200u}) {
    const Buf b = records(handshake_of(openssl_hello()), fragment);
    const TlsHello h = parse_tls_client_hello(b);
    ASSERT_EQ(h.status, Parse::COMPLETE) << fragment;
    EXPECT_EQ(h.names, std::vector<std::string>{"x.test"});
    for (size_t n = 0; n < b.size(); ++n) {
      const TlsHello p = parse_tls_client_hello(span(b, n));
      ASSERT_EQ(p.status, Parse::INCOMPLETE) << fragment << " " << n;
      ASSERT_GE(p.need, 1u);
      ASSERT_LE(n + p.need, b.size()) << fragment << " " << n;  // never asks for more than will come
    }
  }
}

TEST(InspectTls, ConstructedHellos) {
  EXPECT_EQ(parse_tls_client_hello(records(handshake({"Example.COM."}))).names, std::vector<std::string>{"example.com"});
  const TlsHello two = parse_tls_client_hello(records(handshake({"a.test", "b.test"})));
  EXPECT_EQ(two.status, Parse::COMPLETE);
  EXPECT_EQ(two.names, (std::vector<std::string>{"a.test", "b.test"}));
  const TlsHello none = parse_tls_client_hello(records(handshake({}, false)));
  EXPECT_EQ(none.status, Parse::COMPLETE);
  EXPECT_TRUE(none.names.empty());
}

TEST(InspectTls, AnIncompleteHelloStillShowsAWholeSniExtension) {
  const Buf b = records(handshake({"seen.test"}));
  // Cut in the last extension (supported_versions): the SNI before it is whole.
  const TlsHello h = parse_tls_client_hello(span(b, b.size() - 2));
  ASSERT_EQ(h.status, Parse::INCOMPLETE);
  EXPECT_EQ(h.need, 2u);
  EXPECT_EQ(h.names, std::vector<std::string>{"seen.test"});
}

TEST(InspectTls, NotTlsOrMalformed) {
  EXPECT_EQ(parse_tls_client_hello(bytes("GET / HTTP/1.1\r\n")).status, Parse::NOT_THIS);
  EXPECT_EQ(parse_tls_client_hello(bytes("G")).status, Parse::NOT_THIS);  // decided on the first byte
  EXPECT_EQ(parse_tls_client_hello(Buf{0x80, 0x2e, 0x01, 0x03, 0x01}).status, Parse::NOT_THIS);  // SSLv2 hello
  Buf b = openssl_hello();
  Buf appdata = b;
  appdata[0] = 23;
  EXPECT_EQ(parse_tls_client_hello(appdata).status, Parse::NOT_THIS);
  Buf server_hello = b;
  server_hello[5] = 2;
  EXPECT_EQ(parse_tls_client_hello(server_hello).status, Parse::NOT_THIS);
  Buf big_record = b;
  big_record[3] = 0x48;  // 18 KiB record: over 2^14
  EXPECT_EQ(parse_tls_client_hello(big_record).status, Parse::NOT_THIS);
  Buf bad_ext = records(handshake({"x.test"}));
  bad_ext[bad_ext.size() - 4] = 0x7f;  // supported_versions' length runs past the end
  EXPECT_EQ(parse_tls_client_hello(bad_ext).status, Parse::NOT_THIS);
  Buf ctl = records(handshake({std::string("a\x01.test")}));
  EXPECT_EQ(parse_tls_client_hello(ctl).status, Parse::NOT_THIS);  // a control byte in the host name
}

// ---- HTTP -----------------------------------------------------------------------------------------

const std::string kRequest =
    "GET /index.html HTTP/1.1\r\nUser-Agent: curl/7.88.1\r\nhOsT:  Example.COM:8080 \r\nAccept: */*\r\n\r\n";

TEST(InspectHttp, ReadsTheHostField) {
  const HttpRequest r = parse_http_request(bytes(kRequest));
  ASSERT_EQ(r.status, Parse::COMPLETE);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.names, std::vector<std::string>{"example.com"});
}

TEST(InspectHttp, NeedsMoreUntilTheEmptyLineAtEverySplit) {
  const Buf b = bytes(kRequest);
  for (size_t n = 0; n < b.size(); ++n) {
    const HttpRequest r = parse_http_request(span(b, n));
    ASSERT_EQ(r.status, Parse::INCOMPLETE) << n;
    ASSERT_GE(r.need, 1u);
    ASSERT_LE(n + r.need, b.size()) << n;
  }
}

TEST(InspectHttp, FormsOfTheRequest) {
  EXPECT_EQ(parse_http_request(bytes("GET / HTTP/1.0\nHost: a.test\n\n")).names, std::vector<std::string>{"a.test"});
  EXPECT_EQ(parse_http_request(bytes("GET http://user@Proxy.test:81/x HTTP/1.1\r\nHost: other.test\r\n\r\n")).names,
            (std::vector<std::string>{"proxy.test", "other.test"}));
  EXPECT_EQ(parse_http_request(bytes("CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n")).names,
            (std::vector<std::string>{"tunnel.test", "tunnel.test"}));
  EXPECT_EQ(parse_http_request(bytes("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n")).names,
            std::vector<std::string>{"[2001:db8::1]"});
  const HttpRequest no_host = parse_http_request(bytes("GET / HTTP/1.1\r\nX-Host: a.test\r\n\r\n"));
  EXPECT_EQ(no_host.status, Parse::COMPLETE);
  EXPECT_TRUE(no_host.names.empty());
}

TEST(InspectHttp, NotHttp) {
  for (std::string s : {std::string("\x16\x03\x01"), std::string("SSH-2.0-OpenSSH_9.2\r\n"), std::string("get / HTTP/1.1\r\n"),
                        std::string("GET  / HTTP/1.1\r\n"), std::string("GET / HTTP/2.0\r\n"), std::string("GET / FTP/1.1\r\n"),
                        std::string("GET / HTTP/1.1\rX"), std::string(" GET")})
    EXPECT_EQ(parse_http_request(bytes(s)).status, Parse::NOT_THIS) << s;
  EXPECT_EQ(parse_http_request(bytes("GET / HT")).status, Parse::INCOMPLETE);
}

TEST(InspectHttp, HeadersPastTheCapAreDecidedOnWhatIsThere) {
  std::string s = "GET / HTTP/1.1\r\nHost: capped.test\r\n";
  while (s.size() < kMaxHttpHeaders + 10) s += "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  const HttpRequest r = parse_http_request(bytes(s));
  EXPECT_EQ(r.status, Parse::NOT_THIS);
  EXPECT_EQ(r.names, std::vector<std::string>{"capped.test"});
}

// ---- DNS ------------------------------------------------------------------------------------------

Buf dns_header(uint16_t flags, uint16_t qd) {
  Buf b = {0x12, 0x34};
  put16(b, flags);
  put16(b, qd);
  b.insert(b.end(), 6, 0);
  return b;
}
void put_name(Buf& b, std::initializer_list<std::string> labels) {
  for (const auto& l : labels) {
    b.push_back(static_cast<uint8_t>(l.size()));
    b.insert(b.end(), l.begin(), l.end());
  }
  b.push_back(0);
}

TEST(InspectDns, AQuery) {
  Buf q = dns_header(0x0100, 1);  // RD
  put_name(q, {"www", "Example", "COM"});
  q.insert(q.end(), {0, 28, 0, 1});  // AAAA IN
  const auto m = parse_dns(q);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->response);
  EXPECT_EQ(m->id, 0x1234);
  ASSERT_EQ(m->questions.size(), 1u);
  EXPECT_EQ(m->questions[0].name, "www.example.com");
  EXPECT_EQ(m->questions[0].qtype, 28);
  EXPECT_EQ(dns_type_name(m->questions[0].qtype), "AAAA");
  EXPECT_EQ(dns_type_name(4711), "TYPE4711");
  q[2] |= 0x80;
  EXPECT_TRUE(parse_dns(q)->response);
}

TEST(InspectDns, CompressedNames) {
  Buf q = dns_header(0x0000, 2);
  put_name(q, {"www", "example", "com"});  // at 12; "example" at 16
  q.insert(q.end(), {0, 1, 0, 1});
  q.insert(q.end(), {4, 'm', 'a', 'i', 'l', 0xC0, 16});  // mail + pointer to "example.com"
  q.insert(q.end(), {0, 15, 0, 1});
  const auto m = parse_dns(q);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->questions.size(), 2u);
  EXPECT_EQ(m->questions[1].name, "mail.example.com");
  EXPECT_EQ(m->questions[1].qtype, 15);
  const auto n = parse_dns_name(q, 33);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->second, 33u + 7);  // just past the pointer
}

TEST(InspectDns, MalformedNames) {
  auto with_name = [](Buf name) {
    Buf q = dns_header(0, 1);
    q.insert(q.end(), name.begin(), name.end());
    q.insert(q.end(), {0, 1, 0, 1});
    return q;
  };
  EXPECT_FALSE(parse_dns(with_name({0xC0, 12})));         // points at itself
  EXPECT_FALSE(parse_dns(with_name({1, 'a', 0xC0, 12})));  // a loop back to its own start
  EXPECT_FALSE(parse_dns(with_name({0xC0, 40})));         // points forward (past the end)
  EXPECT_FALSE(parse_dns(with_name({0x41, 'a'})));        // extended label type
  EXPECT_FALSE(parse_dns(with_name({5, 'a', 'b'})));      // a label past the end
  Buf longname;
  for (int i = 0; i < 5; ++i) {
    longname.push_back(63);
    longname.insert(longname.end(), 63, 'a');
  }
  longname.push_back(0);
  EXPECT_FALSE(parse_dns(with_name(longname)));  // over 255 bytes
  Buf q = dns_header(0, 1);
  put_name(q, {"a", "test"});
  EXPECT_FALSE(parse_dns(q));                    // no QTYPE/QCLASS
  EXPECT_FALSE(parse_dns(dns_header(0, 0)));     // no question
  EXPECT_FALSE(parse_dns(Buf{1, 2, 3}));         // shorter than the header
  Buf cut = dns_header(0, 1);
  cut.push_back(0xC0);
  EXPECT_FALSE(parse_dns(cut));                  // the message ends inside a pointer
  Buf odd = dns_header(0, 1);
  odd.insert(odd.end(), {3, 'a', '.', 0xff, 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1});
  ASSERT_TRUE(parse_dns(odd));
  EXPECT_EQ(parse_dns(odd)->questions[0].name, "a\\046\\255.test");
  Buf root = dns_header(0, 1);
  root.insert(root.end(), {0, 0, 2, 0, 1});
  EXPECT_EQ(parse_dns(root)->questions[0].name, ".");
}

TEST(InspectNames, Patterns) {
  auto p = [](const char* s) { return parse_pattern(s).value(); };
  EXPECT_TRUE(name_matches(p("example.com"), "example.com"));
  EXPECT_FALSE(name_matches(p("example.com"), "www.example.com"));
  EXPECT_TRUE(name_matches(p("*.ads.test"), "x.ads.test"));
  EXPECT_TRUE(name_matches(p("*.ads.test"), "a.b.ads.test"));
  EXPECT_FALSE(name_matches(p("*.ads.test"), "ads.test"));
  EXPECT_FALSE(name_matches(p("*.ads.test"), "xads.test"));
  EXPECT_TRUE(any_matches({p("Example.COM.")}, "EXAMPLE.com."));
  for (const char* bad : {"", "*", "*.", "a*.test", "*.*.test", ".test", "a..test", "a b"})
    EXPECT_FALSE(parse_pattern(bad)) << bad;
}

// ---- The plugin -----------------------------------------------------------------------------------

class InspectPlugin : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    handle_ = ::dlopen(LFP_INSPECT_CALLOUTS, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << ::dlerror();
    auto entry = reinterpret_cast<const lfp_callout_plugin2* (*)()>(::dlsym(handle_, "lfp_callout_plugin_v2"));
    ASSERT_NE(entry, nullptr);
    plugin_ = entry();
  }
  const lfp_callout2& callout(const std::string& key) {
    for (size_t i = 0; i < plugin_->ncallouts; ++i)
      if (key == plugin_->callouts[i].key) return plugin_->callouts[i];
    ADD_FAILURE() << "no callout " << key;
    return plugin_->callouts[0];
  }

  struct Call {
    std::string layer = "STREAM_V4", config;
    std::vector<std::pair<std::string, std::string>> fields = {
        {"IP_REMOTE_ADDRESS", "192.0.2.7"}, {"IP_REMOTE_PORT", "443"}, {"IP_LOCAL_ADDRESS", "10.0.0.1"},
        {"IP_LOCAL_PORT", "40000"}, {"IP_PROTOCOL", "TCP"}, {"DIRECTION", "OUTBOUND"}};
    Buf data;
    uint32_t flags = LFP_STREAM_FLAG_SEND;
    uint64_t offset = 0, flow = 77, context = 0;
  };
  lfp_callout_classify_out2 classify(const std::string& key, const Call& c) {
    std::vector<lfp_callout_field> f;
    for (const auto& [k, v] : c.fields) f.push_back({k.c_str(), v.c_str()});
    lfp_callout_classify_in2 in{};
    in.v1 = {c.layer.c_str(), f.data(), f.size(), "f1", c.config.c_str(), c.flow, 1, "/usr/bin/curl",
             c.data.empty() ? nullptr : c.data.data(), c.data.size(), 1};
    in.stream_flags = c.flags;
    in.stream_offset = c.offset;
    in.flow_context = c.context;
    lfp_callout_classify_out2 out{};
    out.v1.action = LFP_CALLOUT_CONTINUE;
    callout(key).classify(&in, &out);
    return out;
  }
  static std::string temp_path(const std::string& name) {
    return ::testing::TempDir() + "lfp-inspect-" + std::to_string(::getpid()) + "-" + name;
  }
  static std::vector<json> read_lines(const std::string& path) {
    std::vector<json> v;
    std::ifstream f(path);
    for (std::string line; std::getline(f, line);) v.push_back(json::parse(line));
    return v;
  }

  static inline void* handle_ = nullptr;
  static inline const lfp_callout_plugin2* plugin_ = nullptr;
};

constexpr const char* kTls4 = "4c460000-0000-4000-8000-000000000101";
constexpr const char* kTls6 = "4c460000-0000-4000-8000-000000000102";
constexpr const char* kHttp4 = "4c460000-0000-4000-8000-000000000103";
constexpr const char* kDns4 = "4c460000-0000-4000-8000-000000000105";
constexpr const char* kDns6 = "4c460000-0000-4000-8000-000000000106";
constexpr const char* kCount4 = "4c460000-0000-4000-8000-000000000107";

TEST_F(InspectPlugin, ExportsEighteenCalloutsAtTheirLayers) {
  EXPECT_EQ(plugin_->api_version, 2u);
  ASSERT_EQ(plugin_->ncallouts, 18u);
  const char* layers[] = {"STREAM_V4", "STREAM_V6", "STREAM_V4", "STREAM_V6", "DATAGRAM_DATA_V4", "DATAGRAM_DATA_V6",
                          "STREAM_V4", "STREAM_V6", "INBOUND_TRANSPORT_V4", "INBOUND_TRANSPORT_V6", "IPFORWARD_V4", "IPFORWARD_V6",
                          "INBOUND_TRANSPORT_V4", "INBOUND_TRANSPORT_V6", "OUTBOUND_TRANSPORT_V4", "OUTBOUND_TRANSPORT_V6",
                          "IPFORWARD_V4", "IPFORWARD_V6"};  // (the last six: the log, log_callout_test.cpp)
  for (size_t i = 0; i < std::size(layers); ++i) {
    char key[40];
    std::snprintf(key, sizeof key, "4c460000-0000-4000-8000-%012zx", 0x101 + i);
    EXPECT_STREQ(plugin_->callouts[i].key, key);
    EXPECT_STREQ(plugin_->callouts[i].layer, layers[i]);
  }
  EXPECT_NE(plugin_->callouts[6].flow_delete, nullptr);
}

TEST_F(InspectPlugin, TlsNeedsMoreDataThenDecides) {
  const Buf hello = openssl_hello();
  Call c;
  c.config = R"({"block": ["x.test"]})";
  for (size_t n : {0u, 1u, 4u, 5u, 100u, 311u}) {
    c.data = Buf(hello.begin(), hello.begin() + static_cast<long>(n));
    const auto out = classify(kTls4, c);
    EXPECT_EQ(out.stream_action, LFP_STREAM_ACTION_NEED_MORE_DATA) << n;
    if (n >= 5) {
      EXPECT_EQ(out.count_bytes_required, hello.size() - n) << n;
    }
    EXPECT_GE(out.count_bytes_required, 1u);
  }
  c.data = hello;
  auto out = classify(kTls4, c);
  EXPECT_EQ(out.v1.action, LFP_CALLOUT_BLOCK);
  EXPECT_EQ(out.stream_action, LFP_STREAM_ACTION_NONE);
  EXPECT_EQ(out.v1.clear_action_write, 1);
  c.flags = LFP_STREAM_FLAG_RECEIVE;  // LFP at the server: the ClientHello is received
  EXPECT_EQ(classify(kTls6, c).v1.action, LFP_CALLOUT_BLOCK);
  c.config = R"({"block": ["*.test"]})";
  EXPECT_EQ(classify(kTls4, c).v1.action, LFP_CALLOUT_BLOCK);
  c.config = R"({"block": ["*.x.test", "test", "y.test"]})";
  out = classify(kTls4, c);
  EXPECT_EQ(out.stream_action, LFP_STREAM_ACTION_ALLOW_CONNECTION);
  c.config = "";
  EXPECT_EQ(classify(kTls4, c).stream_action, LFP_STREAM_ACTION_ALLOW_CONNECTION);
}

TEST_F(InspectPlugin, TlsOverSeveralRecordsInSegments) {
  const Buf b = records(handshake_of(openssl_hello()), 64);
  Call c;
  c.config = R"({"block": ["X.TEST."]})";
  size_t have = 1;
  int asks = 0;
  for (;;) {  // as the data path does: give what was asked for, then ask again
    c.data = Buf(b.begin(), b.begin() + static_cast<long>(have));
    const auto out = classify(kTls4, c);
    if (out.stream_action != LFP_STREAM_ACTION_NEED_MORE_DATA) {
      EXPECT_EQ(out.v1.action, LFP_CALLOUT_BLOCK);
      break;
    }
    ASSERT_LE(have + out.count_bytes_required, b.size());
    have += out.count_bytes_required;
    ASSERT_LT(++asks, 100);
  }
  EXPECT_EQ(have, b.size());
}

TEST_F(InspectPlugin, TlsBufferLimitNotTlsAndMidStream) {
  const Buf hello = openssl_hello();
  Call c;
  c.config = R"({"block": ["x.test"]})";
  c.data = Buf(hello.begin(), hello.begin() + 50);  // before the SNI
  c.flags = LFP_STREAM_FLAG_SEND | LFP_STREAM_FLAG_BUFFER_LIMIT_REACHED;
  EXPECT_EQ(classify(kTls4, c).stream_action, LFP_STREAM_ACTION_ALLOW_CONNECTION);
  c.flags = LFP_STREAM_FLAG_SEND;
  c.data = bytes("SSH-2.0-OpenSSH_9.2\r\n");
  EXPECT_EQ(classify(kTls4, c).stream_action, LFP_STREAM_ACTION_ALLOW_CONNECTION);
  c.data = hello;
  c.offset = 10;  // the start went by: nothing to parse
  EXPECT_EQ(classify(kTls4, c).stream_action, LFP_STREAM_ACTION_ALLOW_CONNECTION);
}

TEST_F(InspectPlugin, BadConfigurationBlocks) {
  Call c;
  c.data = openssl_hello();
  for (const char* bad : {"{", "[]", R"({"block": "x.test"})", R"({"block": [1]})", R"({"block": ["a*b"]})",
                          R"({"log": 5})", R"({"blocks": []})"}) {
    c.config = bad;
    const auto out = classify(kTls4, c);
    EXPECT_EQ(out.v1.action, LFP_CALLOUT_BLOCK) << bad;
    EXPECT_EQ(out.stream_action, LFP_STREAM_ACTION_NONE) << bad;
    Call d = c;
    d.layer = "DATAGRAM_DATA_V4";
    EXPECT_EQ(classify(kDns4, d).v1.action, LFP_CALLOUT_BLOCK) << bad;
    EXPECT_EQ(classify(kCount4, c).v1.action, LFP_CALLOUT_BLOCK) << bad;
  }
}

TEST_F(InspectPlugin, HttpHostInSegments) {
  const Buf req = bytes("POST /upload HTTP/1.1\r\nHost: www.Ads.Test:8080\r\nContent-Length: 0\r\n\r\n");
  Call c;
  c.config = R"({"block": ["*.ads.test"]})";
  for (size_t n : {size_t{0}, size_t{3}, size_t{20}, size_t{40}, req.size() - 1}) {
    c.data = Buf(req.begin(), req.begin() + static_cast<long>(n));
    const auto out = classify(kHttp4, c);
    EXPECT_EQ(out.stream_action, LFP_STREAM_ACTION_NEED_MORE_DATA) << n;
    EXPECT_GE(out.count_bytes_required, 1u);
    EXPECT_LE(n + out.count_bytes_required, req.size()) << n;
  }
  c.data = req;
  EXPECT_EQ(classify(kHttp4, c).v1.action, LFP_CALLOUT_BLOCK);
  c.config = R"({"block": ["ads.test"]})";
  EXPECT_EQ(classify(kHttp4, c).stream_action, LFP_STREAM_ACTION_ALLOW_CONNECTION);
  c.data = openssl_hello();  // TLS on the HTTP callout: not HTTP
  EXPECT_EQ(classify(kHttp4, c).stream_action, LFP_STREAM_ACTION_ALLOW_CONNECTION);
  // The buffer is full with the Host seen: it decides on it.
  c.config = R"({"block": ["*.ads.test"]})";
  c.data = Buf(req.begin(), req.end() - 4);
  c.flags |= LFP_STREAM_FLAG_BUFFER_LIMIT_REACHED;
  EXPECT_EQ(classify(kHttp4, c).v1.action, LFP_CALLOUT_BLOCK);
}

TEST_F(InspectPlugin, DnsBlocksAndLogsQueries) {
  const std::string log = temp_path("dns.jsonl");
  std::remove(log.c_str());
  Call c;
  c.layer = "DATAGRAM_DATA_V4";
  c.fields = {{"IP_REMOTE_ADDRESS", "192.0.2.53"}, {"IP_REMOTE_PORT", "53"}, {"IP_PROTOCOL", "UDP"}};
  c.config = json{{"block", {"tracker.test", "*.ads.test"}}, {"log", log}}.dump();
  c.flags = 0;
  auto query = [](std::initializer_list<std::string> labels, uint16_t type, uint16_t flags = 0x0100) {
    Buf q = dns_header(flags, 1);
    put_name(q, labels);
    q.insert(q.end(), {static_cast<uint8_t>(type >> 8), static_cast<uint8_t>(type), 0, 1});
    return q;
  };
  c.data = query({"Tracker", "test"}, 1);
  EXPECT_EQ(classify(kDns4, c).v1.action, LFP_CALLOUT_BLOCK);
  c.data = query({"cdn", "ads", "test"}, 28);
  EXPECT_EQ(classify(kDns4, c).v1.action, LFP_CALLOUT_BLOCK);
  c.data = query({"ok", "test"}, 65);
  EXPECT_EQ(classify(kDns4, c).v1.action, LFP_CALLOUT_PERMIT);
  c.data = query({"tracker", "test"}, 1, 0x8180);  // a response: not a query
  EXPECT_EQ(classify(kDns4, c).v1.action, LFP_CALLOUT_PERMIT);
  c.data = bytes("not dns");
  EXPECT_EQ(classify(kDns4, c).v1.action, LFP_CALLOUT_CONTINUE);
  c.layer = "DATAGRAM_DATA_V6";
  c.fields = {{"IP_REMOTE_ADDRESS", "2001:db8::53"}, {"IP_REMOTE_PORT", "53"}};
  c.data = query({"v6", "test"}, 28);
  EXPECT_EQ(classify(kDns6, c).v1.action, LFP_CALLOUT_PERMIT);

  const auto lines = read_lines(log);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["name"], "tracker.test");
  EXPECT_EQ(lines[0]["type"], "A");
  EXPECT_EQ(lines[0]["remote"], "192.0.2.53:53");
  EXPECT_EQ(lines[0]["action"], "BLOCK");
  EXPECT_TRUE(lines[0]["time"].is_string());
  EXPECT_EQ(lines[1]["type"], "AAAA");
  EXPECT_EQ(lines[2]["name"], "ok.test");
  EXPECT_EQ(lines[2]["type"], "HTTPS");
  EXPECT_EQ(lines[2]["action"], "PERMIT");
  EXPECT_EQ(lines[3]["remote"], "[2001:db8::53]:53");
  std::remove(log.c_str());
}

TEST_F(InspectPlugin, CountsBytesPerFlowInFlowContexts) {
  const std::string log = temp_path("flows.jsonl");
  std::remove(log.c_str());
  Call c;
  c.config = json{{"log", log}}.dump();
  c.data = Buf(100, 'a');
  auto out = classify(kCount4, c);
  EXPECT_EQ(out.v1.action, LFP_CALLOUT_CONTINUE);
  EXPECT_EQ(out.stream_action, LFP_STREAM_ACTION_NONE);
  ASSERT_EQ(out.set_flow_context, 1);
  ASSERT_NE(out.flow_context, 0u);
  c.context = out.flow_context;
  c.offset = 100;
  c.data = Buf(50, 'b');
  EXPECT_EQ(classify(kCount4, c).set_flow_context, 0);  // known: not set again
  c.flags = LFP_STREAM_FLAG_RECEIVE;
  c.offset = 0;
  c.data = Buf(4000, 'c');
  classify(kCount4, c);
  // Another flow, its own context.
  Call other = c;
  other.flow = 78;
  other.context = 0;
  const auto out2 = classify(kCount4, other);
  ASSERT_EQ(out2.set_flow_context, 1);
  EXPECT_NE(out2.flow_context, out.flow_context);

  const lfp_callout2& k = callout(kCount4);
  k.flow_delete(77, out.flow_context);
  k.flow_delete(77, out.flow_context);  // gone: nothing more
  const auto lines = read_lines(log);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], (json{{"flow", 77}, {"local", "10.0.0.1:40000"}, {"remote", "192.0.2.7:443"}, {"sent", 150},
                            {"received", 4000}}));
  k.flow_delete(78, out2.flow_context);
  EXPECT_EQ(read_lines(log).size(), 2u);
  std::remove(log.c_str());
}

}  // namespace
}  // namespace lfp::test
