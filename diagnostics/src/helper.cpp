#include "lfp/diagnostics/helper.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return result.update({{"status", "failed"}, {"detail", "pipe failed"}}), result;
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]), close(in_pipe[1]);
    return result.update({{"status", "failed"}, {"detail", "pipe failed"}}), result;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    setpgid(0, 0);  // so that a timeout kills what it started too
    std::vector<char*> argv;
    for (const auto& a : h.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (pid < 0) {
    close(in_pipe[1]), close(out_pipe[0]);
    return result.update({{"status", "failed"}, {"detail", "fork failed"}}), result;
  }
  signal(SIGPIPE, SIG_IGN);
  const std::string input = attributes.dump() + "\n";
  (void)!write(in_pipe[1], input.data(), input.size());  // small: fits the pipe
  close(in_pipe[1]);
  std::string out;
  bool timed_out = false;
  for (;;) {
    const int left = h.timeout_ms - static_cast<int>(elapsed());
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out_pipe[0], POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    if (out.size() < (1u << 20)) out.append(buf, static_cast<size_t>(n));
  }
  close(out_pipe[0]);
  if (timed_out) kill(-pid, SIGKILL), kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  result["elapsed_ms"] = elapsed();
  if (timed_out) {
    result["status"] = "timed_out";
    result["detail"] = "no answer within " + std::to_string(h.timeout_ms) + " ms; the helper was killed";
    return result;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    result["status"] = "failed";
    result["detail"] = WIFEXITED(status) ? (WEXITSTATUS(status) == 127 ? "could not run " + h.command[0]
                                                                       : "exit code " + std::to_string(WEXITSTATUS(status)))
                                         : "killed by signal " + std::to_string(WTERMSIG(status));
    return result;
  }
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
