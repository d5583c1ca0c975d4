// SPDX-License-Identifier: MIT
#include "lfp/diagnostics/helper.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lfp/sys/spawn.hpp"

namespace lfp::diagnostics {

using nlohmann::json;

std::vector<HelperRegistration> load_helpers(const std::string& dir, std::vector<std::string>* errors) {
  std::vector<HelperRegistration> out;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    auto err = [&](const std::string& why) {
      if (errors) errors->push_back(path.string() + ": " + why);
    };
    std::ifstream in(path);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      err("not a JSON object");
      continue;
    }
    auto g = j.contains("provider") && j["provider"].is_string() ? Guid::parse(j["provider"].get<std::string>()) : std::nullopt;
    if (!g) {
      err("/provider: must be the provider's GUID");
      continue;
    }
    HelperRegistration h{*g, {}, 5000, path.string()};
    if (!j.contains("command") || !j["command"].is_array() || j["command"].empty()) {
      err("/command: must be a non-empty array of strings (the program and its arguments)");
      continue;
    }
    bool ok = true;
    for (const auto& a : j["command"]) {
      if (!a.is_string()) ok = false;
      else h.command.push_back(a.get<std::string>());
    }
    if (!ok) {
      err("/command: must be an array of strings");
      continue;
    }
    if (j.contains("timeout_ms")) {
      if (!j["timeout_ms"].is_number_unsigned() || j["timeout_ms"].get<uint64_t>() > 600000) {
        err("/timeout_ms: must be 0..600000");
        continue;
      }
      h.timeout_ms = j["timeout_ms"].get<int>();
    }
    out.push_back(std::move(h));
  }
  return out;
}

json run_helper(const HelperRegistration& h, const json& attributes) {
  const auto start = std::chrono::steady_clock::now();
  json result = {{"helper", h.command}, {"registration", h.file}};
  auto elapsed = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  };
  sys::SpawnResult run;
  try {
    // Its own process group, so that a timeout kills what it started too; its stderr is the user's.
    run = sys::run(h.command, {.input = attributes.dump() + "\n",
                               .stderr_fd = STDERR_FILENO,
                               .own_process_group = true,
                               .timeout = std::chrono::milliseconds(h.timeout_ms),
                               .max_output = 1u << 20});
  } catch (const sys::SpawnError& e) {
    return result.update({{"status", "failed"}, {"detail", e.what()}}), result;
  }
  result["elapsed_ms"] = elapsed();
  if (run.timed_out) {
    result["status"] = "timed_out";
    result["detail"] = "no answer within " + std::to_string(h.timeout_ms) + " ms; the helper was killed";
    return result;
  }
  if (!run.ok()) {
    result["status"] = "failed";
    result["detail"] = run.signal ? "killed by signal " + std::to_string(run.signal) : "exit code " + std::to_string(run.code);
    return result;
  }
  const std::string& out = run.out;
  json answer = json::parse(out, nullptr, false);
  if (answer.is_discarded() || !answer.is_object() || !answer.contains("root_cause") || !answer["root_cause"].is_string()) {
    result["status"] = "invalid_answer";
    result["detail"] = "expected {\"root_cause\": \"...\", \"repairs\": [...]} on stdout, got: " + out.substr(0, 200);
    return result;
  }
  result["status"] = "answered";
  result["root_cause"] = answer["root_cause"];
  result["repairs"] = answer.value("repairs", json::array());
  return result;
}

json hand_off(const std::string& dir, const Guid& provider, const json& attributes) {
  std::vector<std::string> errors;
  for (const auto& h : load_helpers(dir, &errors))
    if (h.provider == provider) return run_helper(h, attributes);
  json r = {{"status", "not_registered"}, {"detail", "no helper is registered for provider " + provider.str() + " in " + dir}};
  if (!errors.empty()) r["registry_errors"] = errors;
  return r;
}

}  // namespace lfp::diagnostics
