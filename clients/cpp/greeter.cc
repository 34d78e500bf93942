// greeter-cpp: the kit's polyglot client on gRPC C-core (grpc++), keeping the contract in
// clients/README.md: --name=value flags, the greeter's service config, one progress line a
// second on stderr, one JSON report line on stdout, exit codes 0/1/2, and SIGTERM/SIGINT
// ending the run with a report.
//
// One call at a time on the synchronous stub: call i starts at start + i/rate.

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helloworld/helloworld.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

const char kProgram[] = "greeter-cpp";
const char kMethod[] = "helloworld.Hello/SayHello";
// The service whose health the client watches, and the services the retry policy covers:
// the same as the Go greeter's (`greeter -print-service-config`).
const char kHealthService[] = "helloworld.Hello";

// ---------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------

struct Flags {
  std::string target;
  long long calls = 300;
  double duration_s = 0;
  double rate = 100;
  std::string policy = "round_robin";
  bool retries = true;
  bool health = true;
  double keepalive_s = 0;
  double dns_min_resolve_s = 0;
  double deadline_s = 2;
  bool tls = false;
  std::string ca;
  std::string authority;
  std::string name = "polyglot";
};

// FlagError is a bad command line: exit code 2.
struct FlagError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// RunError means the client could not run (e.g. an unreadable --ca): exit code 1.
struct RunError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char kUsage[] =
    "usage: greeter-cpp --target=URI [--name=value ...]\n"
    "  --target=URI        gRPC target, e.g. dns:///hello-grpc-headless.NS.svc.cluster.local:50051 (required)\n"
    "  --calls=N           unary helloworld.Hello/SayHello calls to make (default 300)\n"
    "  --duration=S        seconds to run instead of a number of calls (default 0: use --calls)\n"
    "  --rate=R            calls per second, paced from the start (default 100; 0: as fast as possible)\n"
    "  --policy=P          round_robin, pick_first, or default (no policy: C-core's pick_first) (default round_robin)\n"
    "  --retries=BOOL      retry UNAVAILABLE and UNKNOWN per the service config (default true)\n"
    "  --health=BOOL       client-side health checking, healthCheckConfig (default true)\n"
    "  --keepalive=S       seconds between HTTP/2 keepalive pings (default 0: off; the kit's servers allow >= 10)\n"
    "  --dns-min-resolve=S shortest interval between DNS re-resolutions (default 0: C-core's 30 s)\n"
    "  --deadline=S        per-call deadline in seconds (default 2)\n"
    "  --tls=BOOL          TLS (default false); with --ca=FILE (PEM) and --authority=NAME\n"
    "  --ca=FILE           PEM file of the CA that signed the server certificate (with --tls=true)\n"
    "  --authority=NAME    the :authority to send (and, with --tls, the server name to verify)\n"
    "  --name=NAME         the name in each request (default polyglot)\n";

double ParseNumber(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(d)) {
    throw FlagError("--" + flag + "=" + v + ": not a number");
  }
  return d;
}

long long ParseInt(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) {
    throw FlagError("--" + flag + "=" + v + ": not a whole number");
  }
  return n;
}

// ParseBool accepts what Go's strconv.ParseBool does, so the clients take the same values.
bool ParseBool(const std::string& flag, const std::string& v) {
  for (const char* t : {"1", "t", "T", "true", "TRUE", "True"}) {
    if (v == t) return true;
  }
  for (const char* f : {"0", "f", "F", "false", "FALSE", "False"}) {
    if (v == f) return false;
  }
  throw FlagError("--" + flag + "=" + v + ": want true or false");
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      throw FlagError("unexpected argument \"" + arg + "\": flags are --name=value");
    }
    size_t eq = arg.find('=');
    std::string key = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (eq == std::string::npos) {
      throw FlagError("flag --" + key + " has no value: flags are --name=value, e.g. --" + key +
                      (key == "tls" || key == "retries" || key == "health" ? "=true" : "=..."));
    }
    std::string v = arg.substr(eq + 1);
    if (key == "target") {
      f.target = v;
    } else if (key == "calls") {
      f.calls = ParseInt(key, v);
    } else if (key == "duration") {
      f.duration_s = ParseNumber(key, v);
    } else if (key == "rate") {
      f.rate = ParseNumber(key, v);
    } else if (key == "policy") {
      f.policy = v;
    } else if (key == "retries") {
      f.retries = ParseBool(key, v);
    } else if (key == "health") {
      f.health = ParseBool(key, v);
    } else if (key == "keepalive") {
      f.keepalive_s = ParseNumber(key, v);
    } else if (key == "dns-min-resolve") {
      f.dns_min_resolve_s = ParseNumber(key, v);
    } else if (key == "deadline") {
      f.deadline_s = ParseNumber(key, v);
    } else if (key == "tls") {
      f.tls = ParseBool(key, v);
    } else if (key == "ca") {
      f.ca = v;
    } else if (key == "authority") {
      f.authority = v;
    } else if (key == "name") {
      f.name = v;
    } else {
      throw FlagError("unknown flag --" + key + " (run with --help for the flags)");
    }
  }
  if (f.target.empty()) {
    throw FlagError("--target is required, e.g. --target=dns:///hello-grpc-headless.NS.svc.cluster.local:50051");
  }
  if (f.calls < 1) throw FlagError("--calls=" + std::to_string(f.calls) + ": want at least 1");
  if (f.duration_s < 0) throw FlagError("--duration: want 0 (use --calls) or more seconds");
  if (f.rate < 0) throw FlagError("--rate: want 0 (as fast as possible) or more calls per second");
  if (f.policy != "round_robin" && f.policy != "pick_first" && f.policy != "default") {
    throw FlagError("--policy=" + f.policy + ": want round_robin, pick_first or default");
  }
  // Keepalive goes to C-core in whole milliseconds, as an int.
  if (f.keepalive_s < 0 || f.keepalive_s * 1000 > INT_MAX) {
    throw FlagError("--keepalive: want 0 (off) or seconds between pings (the kit's servers allow >= 10)");
  }
  if (f.dns_min_resolve_s < 0 || f.dns_min_resolve_s * 1000 > INT_MAX) {
    throw FlagError("--dns-min-resolve: want 0 (C-core's default) or seconds");
  }
  if (f.deadline_s <= 0) throw FlagError("--deadline: want a positive number of seconds");
  if (!f.ca.empty() && !f.tls) {
    throw FlagError("--ca needs --tls=true (without it the connection is plaintext)");
  }
  return f;
}

// ---------------------------------------------------------------------------------------
// JSON output (written by hand: no library beyond grpc++ and protobuf)
// ---------------------------------------------------------------------------------------

// Str is s as a JSON string: quotes, backslashes and control characters escaped, and any
// byte sequence that is not valid UTF-8 replaced by U+FFFD so the line stays valid JSON.
std::string Str(const std::string& s) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      i++;
    } else if (c < 0x20) {
      char buf[8];
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
      }
      i++;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      i++;
    } else {
      // Length of a UTF-8 sequence from its lead byte; 0 for an invalid lead byte.
      size_t n = (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
      bool ok = n > 0 && i + n <= s.size();
      for (size_t k = 1; ok && k < n; k++) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      if (ok && n == 3) {  // no overlong forms, no UTF-16 surrogates
        unsigned char c1 = s[i + 1];
        ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
      }
      if (ok && n == 4) {  // no overlong forms, nothing above U+10FFFF
        unsigned char c1 = s[i + 1];
        ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
      }
      if (ok) {
        out.append(s, i, n);
        i += n;
      } else {
        out += "\\ufffd";
        i++;
      }
    }
  }
  return out + "\"";
}

// Num writes x with at most `decimals` decimals and no trailing zeros: 1.2, 3.01, 100.
std::string Num(double x, int decimals) {
  if (!std::isfinite(x)) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

const char* Bool(bool b) { return b ? "true" : "false"; }

// CodeName is the status code's name as the contract writes it: UNAVAILABLE, DEADLINE_EXCEEDED...
std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  int n = static_cast<int>(code);
  if (n >= 0 && n < static_cast<int>(sizeof kNames / sizeof kNames[0])) return kNames[n];
  return "Code(" + std::to_string(n) + ")";  // not a code gRPC defines; as grpc-go names it
}

// WriteLine writes a line with one write(2), so that lines from two threads never interleave.
void WriteLine(int fd, const std::string& line) {
  std::string s = line + "\n";
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// ---------------------------------------------------------------------------------------
// The channel
// ---------------------------------------------------------------------------------------

// ServiceConfig is the greeter's service config for these flags (clients/README.md).
std::string ServiceConfig(const Flags& f) {
  std::vector<std::string> parts;
  // The load balancing policy. --policy=default sets none, so C-core uses its default,
  // pick_first (one connection, to the first address that answers).
  if (f.policy != "default") {
    parts.push_back("\"loadBalancingConfig\":[{\"" + f.policy + "\":{}}]");
  }
  // Client-side health checking: C-core opens a grpc.health.v1.Health/Watch stream on each
  // connection and a policy that honours it (round_robin) stops picking a backend as soon
  // as it reports NOT_SERVING, e.g. while the pod drains. C-core has the health client
  // built in (no generated health code is needed). pick_first ignores healthCheckConfig.
  if (f.health) {
    parts.push_back(std::string("\"healthCheckConfig\":{\"serviceName\":\"") + kHealthService + "\"}");
  }
  // Retries: a call that failed with UNAVAILABLE (backend went away: connection reset,
  // GOAWAY, refused) or UNKNOWN (a proxy's HTTP 500 when its upstream was cut) is tried
  // again, up to 5 attempts with exponential backoff; the policy may pick another backend.
  // SayHello and SayGoodbye are idempotent, so a retry is safe.
  if (f.retries) {
    parts.push_back(
        "\"methodConfig\":[{"
        "\"name\":[{\"service\":\"helloworld.Hello\"},{\"service\":\"helloworld.Goodbye\"}],"
        "\"retryPolicy\":{\"maxAttempts\":5,\"initialBackoff\":\"0.1s\",\"maxBackoff\":\"1s\","
        "\"backoffMultiplier\":2,\"retryableStatusCodes\":[\"UNAVAILABLE\",\"UNKNOWN\"]}}]");
  }
  std::string sc = "{";
  for (size_t i = 0; i < parts.size(); i++) sc += (i ? "," : "") + parts[i];
  return sc + "}";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RunError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw RunError("cannot read " + path);
  return ss.str();
}

std::shared_ptr<grpc::Channel> NewChannel(const Flags& f) {
  grpc::ChannelArguments args;
  // The kit's client policy (round robin, health checking, retries) as the channel's
  // default service config...
  args.SetServiceConfigJSON(ServiceConfig(f));
  // ...and never one from the name resolver (DNS TXT records): the policy is the flags'.
  // The Go greeter does the same (grpc.WithDisableServiceConfig).
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  // Name the client in the user-agent header (servers' logs and metrics can tell it apart);
  // C-core appends its own "grpc-c++/VERSION".
  args.SetUserAgentPrefix(kProgram);

  if (f.dns_min_resolve_s > 0) {
    // C-core re-resolves when a connection closes (the servers' MAX_CONNECTION_AGE, a pod
    // gone) but at most once per this interval (30 s by default), and a request inside it
    // waits: in a rolling restart the old pods can all drain before the client learns the
    // new ones. The kit's Go clients use 2-5 s (docs/clients.md).
    args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, static_cast<int>(std::lround(f.dns_min_resolve_s * 1000)));
  }

  if (f.keepalive_s > 0) {
    // Ping each connection every --keepalive seconds to find dead ones (a pod gone without
    // a FIN, a NAT or proxy that dropped the flow) instead of waiting for a call to time out.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(std::lround(f.keepalive_s * 1000)));
    // Close the connection when a ping gets no answer in 10 s (the Go greeter's timeout).
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    // Ping idle connections too: between calls, and the ones round_robin keeps to every
    // backend. The kit's servers allow it (PermitWithoutStream) at >= 10 s intervals.
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // C-core stops pinging after 2 pings with no data frame in between (its default),
    // which would end keepalive on an idle connection; 0 means no limit.
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }

  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (f.tls) {
    grpc::SslCredentialsOptions ssl;
    // The CA to verify the server with; without --ca, C-core's default roots
    // (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, else its bundled roots.pem).
    if (!f.ca.empty()) ssl.pem_root_certs = ReadFile(f.ca);
    creds = grpc::SslCredentials(ssl);
    if (!f.authority.empty()) {
      // The name the server's certificate must be for (instead of the target's host)...
      args.SetString(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, f.authority);
      // ...and the :authority sent with each call (ingress/gateway host routing).
      args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, f.authority);
    }
  } else {
    creds = grpc::InsecureChannelCredentials();
    // The :authority sent with each call instead of the target's host.
    if (!f.authority.empty()) args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, f.authority);
  }
  // Left at C-core's defaults on purpose: retries on (GRPC_ARG_ENABLE_RETRIES; a retry
  // policy is only in the service config with --retries), DNS re-resolution at most every
  // 30 s (GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS) and whenever a connection is lost
  // or gets GOAWAY, e.g. at the servers' MAX_CONNECTION_AGE; reconnect backoff 1 s to 120 s.
  return grpc::CreateCustomChannel(f.target, creds, args);
}

// ---------------------------------------------------------------------------------------
// Stopping: SIGTERM/SIGINT end the run after the call in flight
// ---------------------------------------------------------------------------------------

std::mutex g_mu;
std::condition_variable g_cv;  // wakes the pacing wait and the progress thread
bool g_stop = false;           // a signal asked to stop (guarded by g_mu)
bool g_finished = false;       // the run is over (guarded by g_mu)

bool StopRequested() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_stop;
}

// WaitUntil sleeps until t, or until a signal asks to stop; false if it should stop.
bool WaitUntil(Clock::time_point t) {
  std::unique_lock<std::mutex> lock(g_mu);
  g_cv.wait_until(lock, t, [] { return g_stop; });
  return !g_stop;
}

// ---------------------------------------------------------------------------------------
// The tally
// ---------------------------------------------------------------------------------------

struct PodCount {
  std::string node;
  long long calls = 0;
  double first_unix = 0;  // wall clock when its first successful reply arrived
};

struct ErrCount {
  long long count = 0;
  std::string example;  // the first message seen with this code
};

struct Tally {
  std::atomic<long long> calls{0};   // finished calls (read by the progress thread)
  std::atomic<long long> failed{0};
  std::map<std::string, PodCount> pods;  // by backend.pod
  std::map<std::string, long long> by_version;
  std::map<std::string, ErrCount> errors;  // by code name
};

double UnixNow() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string Report(const Flags& f, const Tally& t, double elapsed_s) {
  long long calls = t.calls.load(), failed = t.failed.load(), ok = calls - failed;
  std::string lb = f.policy == "default" ? "pick_first" : f.policy;  // what balanced the calls
  std::ostringstream o;
  o << "{\"target\":" << Str(f.target) << ",\"method\":" << Str(kMethod) << ",\"lb\":" << Str(lb)
    << ",\"calls\":" << calls << ",\"ok\":" << ok << ",\"failed\":" << failed
    << ",\"elapsed_s\":" << Num(elapsed_s, 3)
    << ",\"per_second\":" << Num(elapsed_s > 0 ? calls / elapsed_s : 0, 1);
  o << ",\"backends\":[";
  bool first = true;
  for (const auto& [pod, pc] : t.pods) {
    o << (first ? "" : ",") << "{\"pod\":" << Str(pod) << ",\"node\":" << Str(pc.node)
      << ",\"calls\":" << pc.calls << ",\"share\":" << Num(ok > 0 ? double(pc.calls) / ok : 0, 4)
      << ",\"first_unix\":" << Num(pc.first_unix, 3) << "}";
    first = false;
  }
  o << "],\"by_version\":{";
  first = true;
  for (const auto& [version, n] : t.by_version) {
    o << (first ? "" : ",") << Str(version) << ":" << n;
    first = false;
  }
  // Errors, most frequent first (as the Go greeter's report).
  std::vector<std::pair<std::string, ErrCount>> errs(t.errors.begin(), t.errors.end());
  std::stable_sort(errs.begin(), errs.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  o << "},\"errors\":[";
  first = true;
  for (const auto& [code, e] : errs) {
    o << (first ? "" : ",") << "{\"code\":" << Str(code) << ",\"count\":" << e.count
      << ",\"example\":" << Str(e.example) << "}";
    first = false;
  }
  o << "],\"client\":{\"language\":\"cpp\",\"grpc\":" << Str(grpc::Version())
    << ",\"policy\":" << Str(f.policy) << ",\"retries\":" << Bool(f.retries)
    << ",\"health\":" << Bool(f.health) << ",\"keepalive_s\":" << Num(f.keepalive_s, 3)
    << ",\"dns_min_resolve_s\":" << Num(f.dns_min_resolve_s, 3) << "}}";
  return o.str();
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

int Run(const Flags& f) {
  auto channel = NewChannel(f);  // may throw RunError (an unreadable --ca)
  auto stub = helloworld::Hello::NewStub(channel);
  Tally t;
  const bool timed = f.duration_s > 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.duration_s));

  // Progress: one line a second on stderr, the Go greeter's report.Progress format.
  std::thread progress([&] {
    for (int k = 1;; k++) {
      std::unique_lock<std::mutex> lock(g_mu);
      if (g_cv.wait_until(lock, start + std::chrono::seconds(k), [] { return g_finished; })) return;
      lock.unlock();
      double el = std::chrono::duration<double>(Clock::now() - start).count();
      std::string line = "{\"progress\":{\"calls\":" + std::to_string(t.calls.load()) +
                         ",\"failed\":" + std::to_string(t.failed.load()) +
                         ",\"elapsed_s\":" + Num(el, 3) +
                         (timed ? ",\"duration_s\":" + Num(f.duration_s, 3)
                                : ",\"planned_calls\":" + std::to_string(f.calls)) +
                         "}}";
      WriteLine(STDERR_FILENO, line);
    }
  });

  helloworld::SayHelloRequest req;
  req.set_name(f.name);
  for (long long i = 0; timed || i < f.calls; i++) {
    if (f.rate > 0) {
      auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / f.rate));
      if (timed && due >= end) {  // no call left in the run: it still lasts --duration
        WaitUntil(end);
        break;
      }
      if (!WaitUntil(due)) break;
    } else if (StopRequested()) {
      break;
    }
    if (timed && Clock::now() >= end) break;

    grpc::ClientContext ctx;
    // Each call (all its retry attempts included) must finish within --deadline.
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(
                         std::chrono::duration<double>(f.deadline_s)));
    // Not wait_for_ready: a call fails fast (UNAVAILABLE) when no backend can be reached,
    // as the Go greeter's calls do, so failures show in the report.
    helloworld::SayHelloResponse resp;
    grpc::Status st = stub->SayHello(&ctx, req, &resp);
    if (st.ok()) {
      const auto& b = resp.backend();
      PodCount& pc = t.pods[b.pod()];
      if (pc.calls == 0) {
        pc.first_unix = UnixNow();
        pc.node = b.node();
      }
      pc.calls++;
      t.by_version[b.version()]++;
    } else {
      ErrCount& e = t.errors[CodeName(st.error_code())];
      if (e.count == 0) e.example = st.error_message();
      e.count++;
      t.failed++;
    }
    t.calls++;  // after failed, so that the progress line never shows failed > calls
  }
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();

  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_finished = true;
  }
  g_cv.notify_all();
  progress.join();
  WriteLine(STDOUT_FILENO, Report(f, t, elapsed_s));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  try {
    f = ParseFlags(argc, argv);
  } catch (const FlagError& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    return 2;
  }

  // Block SIGTERM and SIGINT before gRPC starts its threads (they inherit the mask), and
  // take them on one thread of ours with sigwait: the main thread then stops between calls.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::thread signals([&sigs] {
    for (;;) {
      int sig = 0;
      if (sigwait(&sigs, &sig) != 0) continue;
      std::lock_guard<std::mutex> lock(g_mu);
      if (g_finished) return;  // woken by main at the end (below)
      g_stop = true;
      g_cv.notify_all();
    }
  });
  pthread_t signals_handle = signals.native_handle();

  int code;
  try {
    code = Run(f);
  } catch (const RunError& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    code = 1;
  }
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_finished = true;
  }
  pthread_kill(signals_handle, SIGTERM);  // ends the sigwait loop (g_finished is set)
  signals.join();
  return code;
}
