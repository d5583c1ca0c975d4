// SPDX-License-Identifier: MIT
#pragma once
// Errors carry WFP's FWP_E_* names (without the prefix) so a WFP user recognizes them.
#include <stdexcept>
#include <string>
#include <string_view>

namespace lfp {

enum class ErrorCode {
  CALLOUT_NOT_FOUND,
  CONDITION_NOT_FOUND,
  FILTER_NOT_FOUND,
  LAYER_NOT_FOUND,
  PROVIDER_NOT_FOUND,
  PROVIDER_CONTEXT_NOT_FOUND,
  SUBLAYER_NOT_FOUND,
  NOT_FOUND,
  ALREADY_EXISTS,
  IN_USE,
  BUILTIN_OBJECT,
  LIFETIME_MISMATCH,
  INVALID_FLAGS,
  INVALID_NET_MASK,
  INVALID_RANGE,
  NULL_DISPLAY_NAME,
  INVALID_ACTION_TYPE,
  INVALID_WEIGHT,
  MATCH_TYPE_MISMATCH,
  TYPE_MISMATCH,
  INCOMPATIBLE_LAYER,
  INVALID_PARAMETER,
  ACCESS_DENIED,
  TIMEOUT,
  TXN_IN_PROGRESS,
  NO_TXN_IN_PROGRESS,
  INCOMPATIBLE_TXN,
  TXN_ABORTED,
  SESSION_ABORTED,
  DYNAMIC_SESSION_IN_PROGRESS,
};

std::string_view to_string(ErrorCode c);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string(to_string(code)) + ": " + message), code_(code), message_(message) {}
  ErrorCode code() const { return code_; }
  // The message without the code prefix.
  const std::string& detail() const { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

}  // namespace lfp
