// Benchmarks: shared helpers (environment line, failure, clocks, /proc readings).
#ifndef TETHER_TESTS_BENCHMARKS_BENCH_SUPPORT_HPP
#define TETHER_TESTS_BENCHMARKS_BENCH_SUPPORT_HPP

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bench {

/// A benchmark whose set-up is broken says so and exits non-zero: never a number.
[[noreturn]] inline void die(const std::string& why) {
    std::fprintf(stderr, "tether bench: FAILED: %s\n", why.c_str());
    std::fflush(stderr);
    std::_Exit(1);
}

inline std::int64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts); // steady_clock on Linux; comparable across processes
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
inline std::int64_t cpu_ns(clockid_t which) {
    timespec ts{};
    clock_gettime(which, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
inline std::int64_t thread_cpu_ns() { return cpu_ns(CLOCK_THREAD_CPUTIME_ID); }
inline std::int64_t process_cpu_ns() { return cpu_ns(CLOCK_PROCESS_CPUTIME_ID); }

inline std::string compiler() {
#if defined(__clang__)
    return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("g++ ") + __VERSION__;
#else
    return "unknown";
#endif
}

inline void emit(const nlohmann::json& j) {
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
}

/// First line of every program: where the figures come from.
inline void print_env(const std::string& program) {
    nlohmann::json j;
    j["kind"] = "env";
    j["program"] = program;
    j["cores"] = std::thread::hardware_concurrency();
    j["online_cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
    j["compiler"] = compiler();
#ifdef __OPTIMIZE__
    j["optimized"] = true;
#else
    j["optimized"] = false;
#endif
    j["pid"] = static_cast<long>(getpid());
    emit(j);
}

/// Kilobytes from a "Name:   123 kB" line of /proc/self/status.
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

/// Raises the soft descriptor limit to `want` (or fails, naming the hard limit).
inline void raise_nofile(rlim_t want) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit(RLIMIT_NOFILE) failed");
    if (rl.rlim_cur >= want) return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        die("need " + std::to_string(want) + " file descriptors, the hard limit is " +
            std::to_string(rl.rlim_max) + " (raise it with ulimit -Hn)");
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit(RLIMIT_NOFILE) failed: " + std::string(std::strerror(errno)));
}

/// Kills the process with a message when a phase takes longer than `seconds`.
inline void watchdog(unsigned seconds, const char* phase) {
    static const char* current = "";
    current = phase;
    std::signal(SIGALRM, [](int) {
        const char head[] = "tether bench: FAILED: timed out in phase: ";
        (void)!write(2, head, sizeof head - 1);
        (void)!write(2, current, std::strlen(current));
        (void)!write(2, "\n", 1);
        std::_Exit(1);
    });
    alarm(seconds);
}

inline double median(std::vector<double> v) {
    if (v.empty()) die("median of nothing");
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
/// Nearest-rank percentile.
inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) die("percentile of nothing");
    std::sort(v.begin(), v.end());
    std::size_t rank =
        static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    if (rank == 0) rank = 1;
    return v[rank - 1];
}

} // namespace bench

#endif
