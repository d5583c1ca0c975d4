// SPDX-License-Identifier: MIT
#pragma once
// The protocol parsers of the built-in inspection callouts (lfp_inspect_callouts): TLS ClientHello
// (SNI), HTTP/1.x request headers (Host), DNS questions, and the block-list name match. Pure
// functions over byte spans: no I/O, no state, no exceptions on any input (they are fuzzed:
// fuzz/fuzz_inspect.cpp). Names come back lower-case, without a trailing dot.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lfp::inspect {

using Bytes = std::span<const uint8_t>;

// What a stream parser made of the bytes it was given (the first bytes of one direction).
enum class Parse : uint8_t {
  INCOMPLETE,  // could be the protocol; `need` more bytes at least are required to finish
  NOT_THIS,    // not this protocol (or malformed, or past the size cap)
  COMPLETE,    // parsed; `names` holds what was found (may be empty)
};

// ---- TLS ------------------------------------------------------------------------------------------
// The ClientHello, in TLS records of content type 22 (handshake), possibly split over several records
// and several TCP segments. SSLv2-compatible hellos (no SNI possible) are NOT_THIS.
inline constexpr size_t kMaxClientHello = 64 * 1024;  // handshake body bytes; more is NOT_THIS

struct TlsHello {
  Parse status = Parse::NOT_THIS;
  size_t need = 0;                 // INCOMPLETE: at least this many more bytes (>= 1)
  // Every host_name of every server_name extension, in order. INCOMPLETE: those of the server_name
  // extensions wholly within the bytes given, so that a caller that can wait no longer (buffer
  // limit) may still decide on them. NOT_THIS (malformed): those found before the fault.
  std::vector<std::string> names;
  uint16_t legacy_version = 0;     // client_version (0x0303 for TLS 1.2 and 1.3)
};
TlsHello parse_tls_client_hello(Bytes data);

// ---- HTTP -----------------------------------------------------------------------------------------
// An HTTP/1.x request: request line and header fields up to the empty line (CRLF or bare LF line ends).
inline constexpr size_t kMaxHttpHeaders = 16 * 1024;  // request line + headers + empty line

struct HttpRequest {
  Parse status = Parse::NOT_THIS;
  size_t need = 0;                 // INCOMPLETE: at least this many more bytes (>= 1)
  std::string method;              // once the request line is complete
  // The host names the request names: each Host field's (port stripped) and the authority of an
  // absolute-form or authority-form (CONNECT) request target. INCOMPLETE: those of complete lines.
  std::vector<std::string> names;
};
HttpRequest parse_http_request(Bytes data);

// ---- DNS ------------------------------------------------------------------------------------------
struct DnsQuestion {
  std::string name;  // lower case, labels joined by '.', no trailing dot ("." for the root); bytes
                     // other than letters, digits, '-' and '_' are written \DDD (as dig does)
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

struct DnsMessage {
  uint16_t id = 0;
  bool response = false;  // QR
  uint8_t opcode = 0;
  uint8_t rcode = 0;
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  std::vector<DnsQuestion> questions;  // the questions parsed (at most kMaxDnsQuestions)
};
inline constexpr size_t kMaxDnsQuestions = 8;

// One DNS message (a UDP payload). Nothing, when it is not DNS: shorter than the header, no question,
// or a question that does not parse (bad label, a compression pointer that does not point back, a
// name over 255 bytes, the message ends inside it).
std::optional<DnsMessage> parse_dns(Bytes data);
// The (possibly compressed) name at `offset` of a message, as DnsQuestion::name has it, and the
// offset just past it; nothing if it does not parse. (Exposed for the tests and the fuzzer.)
std::optional<std::pair<std::string, size_t>> parse_dns_name(Bytes msg, size_t offset);
// "A", "AAAA", ..., or "TYPE<n>" (RFC 3597).
std::string dns_type_name(uint16_t qtype);

// ---- Names ----------------------------------------------------------------------------------------
// Lower case, trailing dot removed. Nothing if it is not a usable host name (empty, over 253
// characters, an empty label, or bytes below 0x21, 0x7f or above).
std::optional<std::string> normalize_name(std::string_view name);

// A block-list entry: "example.com" matches that name exactly; "*.example.com" any name below it
// (not example.com itself). Case-insensitive; a trailing dot is ignored.
struct NamePattern {
  std::string suffix;     // normalized, without the "*."
  bool wildcard = false;
};
// Nothing if it is not a pattern: empty, "*" alone, "*." alone, a '*' elsewhere than a leading "*.".
std::optional<NamePattern> parse_pattern(std::string_view text);
bool name_matches(const NamePattern& p, std::string_view normalized_name);
bool any_matches(const std::vector<NamePattern>& list, std::string_view name);  // normalizes `name`

}  // namespace lfp::inspect
