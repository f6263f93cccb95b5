// Benchmarks: helpers for the peer-library baselines (tether_bench_beast,
// tether_bench_lws). Plain C++17 and POSIX only: no websocketpp or
// nlohmann/json, so each program compiles on its own library (plus tether's
// headers in Boost mode for tether_bench_beast's tether variants).
//
// A peer program is run by tether_bench (throughput --beast/--lws, idle
// --variant beast|lws), which owns the server; the peer connects to
// ws://127.0.0.1:<port><path> and prints one JSON line on stdout. A broken
// set-up, or a count that is not exactly the one asked for, exits non-zero
// with a message on stderr: never a figure.
#ifndef TETHER_TESTS_BENCHMARKS_BENCH_PEER_HPP
#define TETHER_TESTS_BENCHMARKS_BENCH_PEER_HPP

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <map>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

namespace peer {

[[noreturn]] inline void die(const std::string& why) {
    std::fprintf(stderr, "tether bench peer: FAILED: %s\n", why.c_str());
    std::fflush(stderr);
    std::_Exit(1);
}

inline std::int64_t clock_ns(clockid_t which) {
    timespec ts{};
    clock_gettime(which, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
inline std::int64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
inline std::int64_t thread_cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

inline long proc_status_kb(const char* name) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const std::string key = std::string(name) + ":";
    while (std::getline(f, line))
        if (line.compare(0, key.size(), key) == 0)
            return std::strtol(line.c_str() + key.size(), nullptr, 10);
    die(std::string("cannot read ") + name + " from /proc/self/status");
}

inline int thread_count() {
    DIR* d = opendir("/proc/self/task");
    if (!d) die("cannot open /proc/self/task");
    int n = 0;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n;
}

inline void raise_nofile(rlim_t want) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit(RLIMIT_NOFILE) failed");
    if (rl.rlim_cur >= want) return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        die("need " + std::to_string(want) + " file descriptors, the hard limit is " +
            std::to_string(rl.rlim_max));
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit(RLIMIT_NOFILE) failed: " + std::string(std::strerror(errno)));
}

/// `prog <mode> --name value ...`
struct options {
    std::string mode;
    std::map<std::string, std::string> kv;
    options(int argc, char** argv) {
        if (argc < 2) die("usage: <throughput|idle> --port P [--name value]...");
        mode = argv[1];
        for (int i = 2; i < argc; ++i) {
            const std::string k = argv[i];
            if (k.rfind("--", 0) != 0 || i + 1 >= argc)
                die("bad argument '" + k + "' (expected --name value)");
            kv[k.substr(2)] = argv[++i];
        }
    }
    std::string str(const std::string& k, const std::string& def) const {
        const auto it = kv.find(k);
        return it == kv.end() ? def : it->second;
    }
    std::size_t num(const std::string& k, std::size_t def) const {
        const auto it = kv.find(k);
        if (it == kv.end()) return def;
        char* end = nullptr;
        const unsigned long long v = std::strtoull(it->second.c_str(), &end, 10);
        if (end == it->second.c_str() || *end != '\0') die("--" + k + " needs a number");
        return static_cast<std::size_t>(v);
    }
};

inline bool optimized() {
#ifdef __OPTIMIZE__
    return true;
#else
    return false;
#endif
}

/// The one result line of a throughput run.
inline void print_throughput(const char* variant, std::size_t count, std::size_t bytes,
                             std::int64_t wall_ns, std::int64_t cpu_ns) {
    std::printf("{\"kind\": \"throughput\", \"variant\": \"%s\", \"count\": %zu, \"bytes\": %zu, "
                "\"seconds\": %.9f, \"client_cpu_s\": %.9f, \"optimized\": %s}\n",
                variant, count, bytes, static_cast<double>(wall_ns) / 1e9,
                static_cast<double>(cpu_ns) / 1e9, optimized() ? "true" : "false");
    std::fflush(stdout);
}

/// The one result line of an idle run: VmRSS before/after opening `count`;
/// `setup_kb` (when >= 0): a one-time cost taken before the first reading.
inline void print_idle(const char* variant, std::size_t count, long rss0, long rss1, int threads0,
                       std::int64_t open_ns, long setup_kb = -1) {
    std::printf("{\"kind\": \"idle\", \"variant\": \"%s\", \"count\": %zu, \"rss_before_kb\": %ld, "
                "\"rss_after_kb\": %ld, \"kb_per_connection\": %.4f, \"threads_before\": %d, "
                "\"threads\": %d, \"open_all_s\": %.6f, ",
                variant, count, rss0, rss1,
                static_cast<double>(rss1 - rss0) / static_cast<double>(count), threads0,
                thread_count(), static_cast<double>(open_ns) / 1e9);
    if (setup_kb >= 0) std::printf("\"setup_kb\": %ld, ", setup_kb);
    std::printf("\"optimized\": %s}\n", optimized() ? "true" : "false");
    std::fflush(stdout);
}

inline double median(std::vector<double> v) {
    if (v.empty()) die("median of nothing");
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
/// Nearest-rank percentile (as bench_support.hpp).
inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) die("percentile of nothing");
    std::sort(v.begin(), v.end());
    std::size_t rank =
        static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    if (rank == 0) rank = 1;
    return v[rank - 1];
}
/// `"name": {"median_ms": .., "p99_ms": .., "n": ..}` as tether_bench's summary().
inline std::string summary_json(const char* name, const std::vector<double>& v) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "\"%s\": {\"median_ms\": %.6f, \"p99_ms\": %.6f, \"n\": %zu}",
                  name, median(v), percentile(v, 99), v.size());
    return buf;
}

} // namespace peer

#endif
