#!/usr/bin/env python3
"""Builds and runs one consumer of tether the way a user would.

    run_consumer.py KIND --repo DIR --work DIR [--cmake ...] [--cxx ...] ...

KIND is one of:
  install           cmake --install the main build into a staging prefix, then
                    move it to WORK/prefix (so the consumers below prove the
                    installed package is relocatable)
  find_package      find_package(tether) from WORK/prefix
  pkg_config        pkg-config --cflags --libs tether (and tether-core) from WORK/prefix
  add_subdirectory  add_subdirectory(<repo>)
  fetch_content     FetchContent from the repository's committed HEAD (file:// git URL)
  asio_config       Asio from an asio-config.cmake (as vcpkg/Conan ship), preferred to
                    tether's Findasio.cmake: add_subdirectory, and find_package with
                    --installed
  core_headers      <tether/core.hpp> and <tether/testing.hpp> preprocess with the
                    poisoned include directory first; <tether/tether.hpp> must not
  options           top-level defaults: -DBUILD_TESTING=OFF turns the tests off,
                    packaging tests are off unless asked for
  compiled          separate compilation: a C++20 program links tether::compiled
                    (add_subdirectory with g++ and with clang++ when found; also
                    find_package with --installed), websocketpp headers poisoned
  boost             Boost mode from the installed package (WORK/prefix):
                    find_package(tether COMPONENTS core_boost), a C++20 program
                    (g++, and clang++ when found) runs the client on
                    beast_transport against a loopback server refusing with 401;
                    standalone Asio and websocketpp headers poisoned. Skipped
                    when tether was installed without Boost mode

The CMake consumers also build consumer_core, linking tether::core only, with
the poisoned include directory first: an #error header under the name of
every websocketpp, OpenSSL, nlohmann/json and asio/ssl header tether includes.
  meson_subproject  meson project with subprojects/tether -> the repository
                    (also consumer_core_boost, tether_core_boost_dep, when
                    meson finds Boost >= 1.81)
  vendored          only single_include/tether/tether.hpp, copied into a fresh
                    folder, compiled by one plain compiler command line; then
                    genesys.hpp next to it; then separate compilation from the
                    single headers (main.cpp at C++20, src.hpp at C++17)
  version_mismatch  a copy of the headers renumbered 99.0.0, mixed with these
                    in one translation unit (a compiler warning) and in one
                    program (check_single_version() false in both copies,
                    nothing on stderr)

Every step has a timeout; nothing touches the network (loopback at most).
Exit 0: passed, 1: failed, 77: skipped (a tool is missing).
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
SKIP = 77
STEP_TIMEOUT = 600  # seconds; a websocketpp translation unit takes 10-20 s, on a busy machine more
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def run(cmd, cwd=None, env=None, expect_ok=True, timeout=STEP_TIMEOUT):
    printable = " ".join(str(c) for c in cmd)
    print(f"$ {printable}", flush=True)
    started = time.monotonic()
    try:
        p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"timed out after {timeout} s: {printable}")
    out = p.stdout + p.stderr
    if out.strip():
        print(out.rstrip(), flush=True)
    print(f"  (exit {p.returncode}, {time.monotonic() - started:.1f} s)", flush=True)
    if expect_ok and p.returncode != 0:
        raise Failure(f"exit code {p.returncode}: {printable}")
    return p


def sanitize_flags(args):
    return SANITIZE if args.sanitize else []


def fresh_dir(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def copy_project(name, dest):
    """A consumer project from tests/consumers/<name>, plus the shared program."""
    fresh_dir(dest.parent)
    shutil.copytree(HERE / name, dest)
    shutil.copy2(HERE / "consumer_main.cpp", dest / "consumer_main.cpp")
    shutil.copy2(HERE / "core_only.cmake", dest / "core_only.cmake")
    return dest


# The headers tether::core must never reach (tether includes them directly).
NOT_CORE_INCLUDE = re.compile(r'^\s*#\s*include\s*<((websocketpp|openssl|nlohmann)/[^>]+|asio/ssl(\.hpp|/[^>]+))>',
                              re.M)


def poison_dir(args):
    """WORK/poison-KIND: an #error header under the name of each websocketpp, OpenSSL,
    nlohmann/json and asio/ssl header that a tether header includes, plus each
    package's usual entry points. First on a tether::core program's include
    path, it fails the build if the program reaches any of them. One per consumer
    test: ctest runs them in parallel, and each makes its directory afresh."""
    names = {"websocketpp/version.hpp", "websocketpp/client.hpp", "openssl/ssl.h",
             "openssl/opensslv.h", "nlohmann/json.hpp", "nlohmann/json_fwd.hpp", "asio/ssl.hpp"}
    for path in (args.repo / "include" / "tether").rglob("*.hpp"):
        names.update(m.group(1) for m in NOT_CORE_INCLUDE.finditer(path.read_text()))
    poison = fresh_dir(args.work / ("poison-" + args.kind))
    for name in sorted(names):
        (poison / name).parent.mkdir(parents=True, exist_ok=True)
        (poison / name).write_text(f'#error "tether::core reached <{name}>: websocketpp, OpenSSL and '
                                   'nlohmann/json are not part of tether::core"\n')
    return poison


def repo_version(repo):
    text = (repo / "include" / "tether" / "version.hpp").read_text()
    parts = dict(re.findall(r"^#define TETHER_VERSION_(MAJOR|MINOR|PATCH) (\d+)$", text, re.M))
    return "{MAJOR}.{MINOR}.{PATCH}".format(**parts)


def cmake_consumer(args, name, defines, work_name=None):
    src = copy_project(name, args.work / (work_name or name) / "src")
    build = args.work / (work_name or name) / "build"
    cmd = [args.cmake, "-S", src, "-B", build, "-G", args.generator,
           f"-DCMAKE_CXX_COMPILER={args.cxx}", "-DCMAKE_BUILD_TYPE=Release",
           f"-DTETHER_EXPECTED_VERSION={repo_version(args.repo)}"]
    cmd += [f"-D{k}={v}" for k, v in dict(defines, TETHER_POISON_DIR=poison_dir(args)).items()]
    if args.sanitize:
        flags = " ".join(SANITIZE)
        cmd += [f"-DCMAKE_CXX_FLAGS={flags}", f"-DCMAKE_EXE_LINKER_FLAGS={flags}"]
    run(cmd)
    run([args.cmake, "--build", build])
    programs = [p for p in ("consumer", "consumer_core") if (build / p).exists()]
    if "consumer_core" not in programs:
        raise Failure(f"{name}: the tether::core program consumer_core was not built")
    for program in programs:
        check_consumer_output(args, run([build / program]))


def check_consumer_output(args, p):
    expected = f"consumer: tether {repo_version(args.repo)}, 2 opens, ok"
    if expected not in p.stdout:
        raise Failure(f"the consumer program did not print '{expected}'")


def installed_prefix(args):
    prefix = args.work / "prefix"
    if not (prefix / "share" / "cmake" / "tether" / "tetherConfig.cmake").is_file():
        raise Failure(f"{prefix} holds no installed tether: run the consumer.install test first")
    return prefix


def kind_install(args):
    staging = args.work / "prefix-staging"
    prefix = args.work / "prefix"
    for d in (staging, prefix):
        if d.exists():
            shutil.rmtree(d)
    run([args.cmake, "--install", args.build_dir, "--prefix", staging] +
        (["--config", args.config] if args.config else []))
    expected = ["include/tether/tether.hpp", "include/tether/core.hpp", "include/tether/version.hpp",
                "share/cmake/tether/tetherConfig.cmake", "share/cmake/tether/tetherConfigVersion.cmake",
                "share/cmake/tether/tetherTargets.cmake", "share/cmake/tether/Findasio.cmake",
                "share/cmake/tether/tetherFindAsio.cmake", "share/pkgconfig/tether.pc",
                "share/pkgconfig/tether-core.pc"]
    missing = [f for f in expected if not (staging / f).is_file()]
    if missing:
        raise Failure("not installed: " + ", ".join(missing))
    # Nothing installed may remember where it was installed.
    for path in staging.rglob("*"):
        if path.is_file() and str(staging) in path.read_text(errors="replace"):
            raise Failure(f"{path.relative_to(staging)} contains the install prefix: not relocatable")
    staging.rename(prefix)
    print(f"installed into {staging}, moved to {prefix}")


def kind_find_package(args):
    cmake_consumer(args, "find_package", {"CMAKE_PREFIX_PATH": installed_prefix(args)})


def kind_add_subdirectory(args):
    cmake_consumer(args, "add_subdirectory", {"TETHER_SOURCE_DIR": args.repo})


def kind_fetch_content(args):
    git = shutil.which("git")
    if not git or not (args.repo / ".git").exists():
        raise Skip("not a git checkout (or no git): FetchContent from a git URL cannot be tested")
    head = run([git, "-C", args.repo, "rev-parse", "HEAD"]).stdout.strip()
    dirty = run([git, "-C", args.repo, "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    if dirty:
        print("note: FetchContent builds the committed HEAD; uncommitted changes are not part of this test")
    cmake_consumer(args, "fetch_content", {"TETHER_GIT_URL": args.repo.as_uri(), "TETHER_GIT_TAG": head})


def kind_pkg_config(args):
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if not pkg_config:
        raise Skip("pkg-config not found")
    prefix = installed_prefix(args)
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "share" / "pkgconfig"))
    version = run([pkg_config, "--modversion", "tether"], env=env).stdout.strip()
    if version != repo_version(args.repo):
        raise Failure(f"pkg-config reports tether {version}, version.hpp says {repo_version(args.repo)}")
    cflags = run([pkg_config, "--cflags", "tether"], env=env).stdout.split()
    libs = run([pkg_config, "--libs", "tether"], env=env).stdout.split()
    if f"-I{prefix}/share/pkgconfig/../../include" not in cflags:
        raise Failure(f"include path not relative to the moved prefix: {cflags}")
    work = fresh_dir(args.work / "pkg_config")
    shutil.copy2(HERE / "consumer_main.cpp", work)
    run([args.cxx, "-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", *sanitize_flags(args),
         *cflags, "consumer_main.cpp", "-o", "consumer", *libs], cwd=work)
    check_consumer_output(args, run([work / "consumer"]))
    # tether-core.pc: Asio and threads only; the poisoned directory first proves it.
    core_cflags = run([pkg_config, "--cflags", "tether-core"], env=env).stdout.split()
    core_libs = run([pkg_config, "--libs", "tether-core"], env=env).stdout.split()
    if any(re.search(r"ssl|crypto|nlohmann|websocketpp", f) for f in core_cflags + core_libs):
        raise Failure(f"tether-core.pc names more than Asio and threads: {core_cflags} {core_libs}")
    run([args.cxx, "-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", *sanitize_flags(args),
         f"-I{poison_dir(args)}", *core_cflags, "consumer_main.cpp", "-o", "consumer_core", *core_libs],
        cwd=work)
    check_consumer_output(args, run([work / "consumer_core"]))


def kind_meson_subproject(args):
    meson = shutil.which("meson")
    if not meson:
        raise Skip("meson not found")
    src = copy_project("meson_subproject", args.work / "meson_subproject" / "src")
    shutil.copytree(poison_dir(args), src / "poison")
    (src / "subprojects").mkdir()
    (src / "subprojects" / "tether").symlink_to(args.repo, target_is_directory=True)
    build = args.work / "meson_subproject" / "build"
    env = dict(os.environ, CXX=str(args.cxx))
    run([meson, "setup", "--force-fallback-for=tether", "--buildtype=release", build, src] +
        (["-Db_sanitize=address,undefined"] if args.sanitize else []), env=env)
    run([meson, "compile", "-C", build])
    check_consumer_output(args, run([build / "consumer"]))
    check_consumer_output(args, run([build / "consumer_core"]))
    commands = (build / "compile_commands.json").read_text()
    if commands.count("poison") < 1:
        raise Failure("consumer_core was not compiled with the poisoned include directory")
    # Boost mode (tether_core_boost_dep), built when tether's meson found Boost >= 1.81.
    if (build / "consumer_core_boost").exists():
        if "-DTETHER_USE_BOOST_ASIO" not in commands:
            raise Failure("consumer_core_boost was not compiled in Boost mode")
        check_consumer_output(args, run([build / "consumer_core_boost"]))
    else:
        print("no Boost >= 1.81 for meson: consumer_core_boost (Boost mode) not built")
    # The subproject's install rules are part of the parent's install.
    dest = args.work / "meson_subproject" / "destdir"
    run([meson, "install", "-C", build, "--destdir", dest, "--quiet"])
    pcs = list(dest.rglob("pkgconfig/tether.pc"))
    headers = list(dest.rglob("include/tether/tether.hpp"))
    if not pcs or not headers or not list(dest.rglob("pkgconfig/tether-core.pc")):
        raise Failure("meson install did not install tether.pc, tether-core.pc and the headers")
    if f"Version: {repo_version(args.repo)}" not in pcs[0].read_text():
        raise Failure(f"{pcs[0]} names another version")
    # Installed on its own (not as a subproject), tether's pkg-config file is relocatable.
    alone = args.work / "meson_subproject" / "alone"
    run([meson, "setup", "-Dtests=disabled", alone / "build", args.repo], env=env)
    run([meson, "install", "-C", alone / "build", "--destdir", alone / "destdir", "--quiet"])
    pcs = list((alone / "destdir").rglob("pkgconfig/tether.pc"))
    if not pcs or "prefix=${pcfiledir}/" not in pcs[0].read_text():
        raise Failure(f"meson's tether.pc is missing or not relocatable: {pcs}")


def vendored_compile(args, work, sources, output):
    # The command line a user types: one header next to the code, system packages only.
    cmd = [args.cxx, "-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-DASIO_STANDALONE",
           *sanitize_flags(args), *sources, "-o", output, "-lssl", "-lcrypto", "-pthread"]
    return run(cmd, cwd=work)


def kind_vendored(args):
    work = fresh_dir(args.work / "vendored")
    shutil.copy2(args.repo / "single_include" / "tether" / "tether.hpp", work / "tether.hpp")
    shutil.copy2(HERE / "vendored" / "main.cpp", work / "main.cpp")
    vendored_compile(args, work, ["main.cpp"], "app")
    p = run([work / "app"])
    if "ok" not in p.stdout:
        raise Failure("the vendored program did not report ok")
    # genesys.hpp next to tether.hpp: Genesys on top of the same single header.
    shutil.copy2(args.repo / "single_include" / "tether" / "genesys.hpp", work / "genesys.hpp")
    (work / "genesys.cpp").write_text('#include "genesys.hpp"\n#include "tether.hpp"\n'
                                      "int main() { return tether::genesys::is_known_region(\"mypurecloud.com\") ? 0 : 1; }\n")
    vendored_compile(args, work, ["genesys.cpp"], "genesys_app")
    # Separate compilation from single headers: the same program at C++20 (no
    # websocketpp header reachable), the transport compiled once at C++17 from src.hpp.
    work = fresh_dir(args.work / "vendored-separate")
    for name in ("tether.hpp", "src.hpp"):
        shutil.copy2(args.repo / "single_include" / "tether" / name, work / name)
    shutil.copy2(HERE / "vendored" / "main.cpp", work / "main.cpp")
    (work / "tether_compiled.cpp").write_text('#include "src.hpp"\n')
    common = ["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-DASIO_STANDALONE",
              "-DTETHER_SEPARATE_COMPILATION", *sanitize_flags(args), "-c"]
    run([args.cxx, "-std=c++20", f"-I{websocketpp_poison_dir(args)}", *common, "main.cpp"], cwd=work)
    run([args.cxx, "-std=c++17", *common, "tether_compiled.cpp"], cwd=work)
    run([args.cxx, *sanitize_flags(args), "main.o", "tether_compiled.o", "-o", "app", "-lssl", "-lcrypto",
         "-pthread"], cwd=work)
    p = run([work / "app"])
    if "ok" not in p.stdout:
        raise Failure("the vendored program in separate mode did not report ok")


def make_other_version(args, root):
    """A copy of include/ renumbered 99.0.0, with its generated files regenerated."""
    fresh_dir(root)
    shutil.copytree(args.repo / "include", root / "include")
    version_hpp = root / "include" / "tether" / "version.hpp"
    text = version_hpp.read_text()
    for part, value in (("MAJOR", 99), ("MINOR", 0), ("PATCH", 0)):
        text = re.sub(rf"^#define TETHER_VERSION_{part} \d+$", f"#define TETHER_VERSION_{part} {value}",
                      text, flags=re.M)
    version_hpp.write_text(text)
    sys.path.insert(0, str(args.repo / "tests" / "tools"))
    import amalgamate  # noqa: E402 (the repository's own generator)
    for rel, content in amalgamate.generate(root).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def kind_version_mismatch(args):
    work = fresh_dir(args.work / "version_mismatch")
    other = work / "other"
    make_other_version(args, other)
    include = args.repo / "include"
    tu_warning = "tether 99.0.0 is included after another tether version in this translation unit"
    base = [args.cxx, "-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-DASIO_STANDALONE"]

    # One translation unit, two copies. -E is enough to see the warnings and
    # keeps the single headers (which may include websocketpp) cheap.
    cases = {
        "split_then_split.cpp": f'#include <tether/core.hpp>\n#include "{other}/include/tether/core.hpp"\n',
        "split_then_single.cpp":
            f'#include <tether/core.hpp>\n#include "{other}/single_include/tether/tether.hpp"\n',
        "single_then_single.cpp": f'#include "{args.repo}/single_include/tether/tether.hpp"\n'
                                  f'#include "{other}/single_include/tether/tether.hpp"\n',
        "single_then_split.cpp": f'#include "{args.repo}/single_include/tether/tether.hpp"\n'
                                 f'#include "{other}/include/tether/tether.hpp"\n',
        "testing_then_single.cpp": f'#include <tether/testing.hpp>\n'
                                   f'#include "{other}/single_include/tether/testing.hpp"\n',
    }
    for name, code in cases.items():
        (work / name).write_text(code + "int main() { return 0; }\n")
        p = run(base + [f"-I{include}", "-E", name, "-o", os.devnull], cwd=work)
        count = p.stderr.count("warning: " + tu_warning)
        if count != 1:
            raise Failure(f"{name}: expected the mixed-version warning once, got it {count} times")
    (work / "same_version.cpp").write_text(
        f'#include <tether/core.hpp>\n#include "{args.repo}/single_include/tether/tether.hpp"\n'
        "int main() { return 0; }\n")
    p = run(base + [f"-I{include}", "-E", "same_version.cpp", "-o", os.devnull], cwd=work)
    if "tether" in p.stderr:
        raise Failure("same_version.cpp: one version, yet a warning")

    # One program, two versions: distinct inline namespaces link side by side,
    # the library prints nothing, and tether::check_single_version() of either
    # copy says the program holds two.
    (work / "unit_current.cpp").write_text(
        "#include <tether/core.hpp>\n#include <cstdio>\nint other_major();\nbool other_single();\n"
        "int main() {\n"
        "    const bool single = tether::check_single_version();\n"
        "    std::printf(\"current %d, other %d, single: %d (current), %d (other)\\n\",\n"
        "                tether::version.major, other_major(), single, other_single());\n"
        "    return tether::version.major != 99 && other_major() == 99 && !single && !other_single()\n"
        "        ? 0 : 1;\n}\n")
    (work / "unit_other.cpp").write_text(
        "#include <tether/core.hpp>\nint other_major() { return tether::version.major; }\n"
        "bool other_single() { return tether::check_single_version(); }\n")
    flags = base + ["-Werror", "-c", *sanitize_flags(args)]
    run(flags + [f"-I{include}", "unit_current.cpp", "-o", "unit_current.o"], cwd=work)
    run(flags + [f"-I{other / 'include'}", "unit_other.cpp", "-o", "unit_other.o"], cwd=work)
    run([args.cxx, *sanitize_flags(args), "unit_current.o", "unit_other.o", "-o", "two_versions", "-pthread"],
        cwd=work)
    p = run([work / "two_versions"])
    if p.stderr:
        raise Failure(f"a library must not write to stderr on its own; the program wrote: {p.stderr!r}")


FAKE_ASIO_CONFIG = """# A minimal asio-config.cmake, as vcpkg and Conan install one (written by run_consumer.py).
set_property(GLOBAL PROPERTY TETHER_TEST_FAKE_ASIO_CONFIG_LOADED TRUE)
if(NOT TARGET asio::asio)
  find_path(TETHER_TEST_FAKE_ASIO_INCLUDE_DIR NAMES asio.hpp)
  add_library(asio::asio INTERFACE IMPORTED)
  set_target_properties(asio::asio PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${TETHER_TEST_FAKE_ASIO_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;TETHER_TEST_FAKE_ASIO_CONFIG")
endif()
"""


def kind_asio_config(args):
    fake = fresh_dir(args.work / "asio_config" / "fake-asio")
    config = fake / "share" / "cmake" / "asio" / "asio-config.cmake"
    config.parent.mkdir(parents=True)
    config.write_text(FAKE_ASIO_CONFIG)
    modes = {"add_subdirectory": {"TETHER_SOURCE_DIR": args.repo, "CMAKE_PREFIX_PATH": fake}}
    if args.installed:
        modes["find_package"] = {"CMAKE_PREFIX_PATH": f"{fake};{installed_prefix(args)}"}
    for mode, defines in modes.items():
        cmake_consumer(args, "asio_config", dict(defines, TETHER_MODE=mode),
                       work_name=f"asio_config/{mode}")


def kind_core_headers(args):
    """The poison works: the full library trips it, the core headers do not."""
    work = fresh_dir(args.work / "core_headers")
    poison = poison_dir(args)
    base = [args.cxx, "-std=c++17", "-DASIO_STANDALONE", f"-I{poison}", f"-I{args.repo / 'include'}", "-E"]
    for header in ("tether/core.hpp", "tether/testing.hpp", "tether/version.hpp"):
        (work / "core.cpp").write_text(f"#include <{header}>\n")
        run(base + ["core.cpp", "-o", os.devnull], cwd=work)
    for header in ("tether/tether.hpp", "tether/transport/websocketpp_transport.hpp",
                   "tether/token_policy/oauth2_response.hpp", "tether/genesys/notification.hpp"):
        (work / "full.cpp").write_text(f"#include <{header}>\n")
        p = run(base + ["full.cpp", "-o", os.devnull], cwd=work, expect_ok=False)
        if p.returncode == 0 or "tether::core reached" not in p.stderr:
            raise Failure(f"<{header}> passed the poisoned include directory: the check proves nothing")


def websocketpp_poison_dir(args):
    """WORK/poison-websocketpp-KIND: an #error header under each websocketpp header name."""
    poison = fresh_dir(args.work / ("poison-websocketpp-" + args.kind))
    (poison / "websocketpp").mkdir()
    for name in ("client.hpp", "version.hpp", "config/asio_client.hpp", "concurrency/none.hpp"):
        (poison / "websocketpp" / name).parent.mkdir(parents=True, exist_ok=True)
        (poison / "websocketpp" / name).write_text(
            f'#error "an application file of a tether::compiled program reached <websocketpp/{name}>"\n')
    return poison


def kind_compiled(args):
    """tether::compiled: the application's files are C++20 and include no websocketpp."""
    compilers = {"cxx": args.cxx}
    clang = shutil.which("clang++") or shutil.which("clang++-14")
    if clang and os.path.realpath(clang) != os.path.realpath(shutil.which(args.cxx) or args.cxx):
        compilers["clang"] = clang
    modes = {f"add_subdirectory-{name}": (cxx, {"TETHER_SOURCE_DIR": args.repo})
             for name, cxx in compilers.items()}
    if args.installed:
        modes["find_package"] = (args.cxx, {"CMAKE_PREFIX_PATH": installed_prefix(args)})
    poison = websocketpp_poison_dir(args)
    for mode, (cxx, defines) in modes.items():
        src = copy_project("compiled", args.work / "compiled" / mode / "src")
        build = args.work / "compiled" / mode / "build"
        cmd = [args.cmake, "-S", src, "-B", build, "-G", args.generator, f"-DCMAKE_CXX_COMPILER={cxx}",
               "-DCMAKE_BUILD_TYPE=Release", f"-DTETHER_EXPECTED_VERSION={repo_version(args.repo)}",
               f"-DTETHER_WEBSOCKETPP_POISON_DIR={poison}", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
        cmd += [f"-D{k}={v}" for k, v in defines.items()]
        if args.sanitize:
            flags = " ".join(SANITIZE)
            cmd += [f"-DCMAKE_CXX_FLAGS={flags}", f"-DCMAKE_EXE_LINKER_FLAGS={flags}"]
        run(cmd)
        run([args.cmake, "--build", build])
        commands = json.loads((build / "compile_commands.json").read_text())
        app = [c["command"] for c in commands if c["file"].endswith("compiled_main.cpp")]
        if not app or "-std=c++20" not in app[0] or str(poison) not in app[0]:
            raise Failure(f"{mode}: compiled_main.cpp was not compiled as C++20 with the poisoned "
                          "websocketpp directory first")
        p = run([build / "consumer_compiled"])
        expected = f"consumer_compiled: tether {repo_version(args.repo)}, C++20, refused with 401, ok"
        if expected not in p.stdout:
            raise Failure(f"{mode}: the program did not print '{expected}'")
        print(f"{mode}: {expected}")


def standalone_poison_dir(args):
    """WORK/poison-standalone-KIND: an #error header under every <asio/...>, <asio.hpp> and
    <websocketpp/...> name tether's headers include (Boost mode must reach none)."""
    poison = fresh_dir(args.work / ("poison-standalone-" + args.kind))
    names = {"asio.hpp"}
    for header in (args.repo / "include").rglob("*.[hi]pp"):
        names.update(re.findall(r"^\s*#\s*include\s*<((?:asio|websocketpp)/[^>]+)>",
                                header.read_text(), re.M))
    for name in sorted(names):
        (poison / name).parent.mkdir(parents=True, exist_ok=True)
        (poison / name).write_text(f'#error "a Boost mode program reached <{name}>"\n')
    return poison


def kind_boost(args):
    """Boost mode, installed: find_package(tether COMPONENTS core_boost), C++20, Beast transport."""
    prefix = installed_prefix(args)
    targets = (prefix / "share" / "cmake" / "tether" / "tetherTargets.cmake").read_text()
    if "tether::core_boost" not in targets:
        raise Skip("tether was installed without Boost mode (no Boost >= 1.81 where it was built)")
    compilers = {"cxx": args.cxx}
    clang = shutil.which("clang++") or shutil.which("clang++-14")
    if clang and os.path.realpath(clang) != os.path.realpath(shutil.which(args.cxx) or args.cxx):
        compilers["clang"] = clang
    poison = standalone_poison_dir(args)
    for name, cxx in compilers.items():
        src = copy_project("boost", args.work / "boost" / name / "src")
        build = args.work / "boost" / name / "build"
        cmd = [args.cmake, "-S", src, "-B", build, "-G", args.generator, f"-DCMAKE_CXX_COMPILER={cxx}",
               "-DCMAKE_BUILD_TYPE=Release", f"-DTETHER_EXPECTED_VERSION={repo_version(args.repo)}",
               f"-DCMAKE_PREFIX_PATH={prefix}", f"-DTETHER_STANDALONE_POISON_DIR={poison}",
               "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
        if args.sanitize:
            flags = " ".join(SANITIZE)
            cmd += [f"-DCMAKE_CXX_FLAGS={flags}", f"-DCMAKE_EXE_LINKER_FLAGS={flags}"]
        run(cmd)
        run([args.cmake, "--build", build])
        commands = json.loads((build / "compile_commands.json").read_text())
        app = [c["command"] for c in commands if c["file"].endswith("boost_main.cpp")]
        if not app or "-std=c++20" not in app[0] or str(poison) not in app[0]:
            raise Failure(f"{name}: boost_main.cpp was not compiled as C++20 with the poisoned "
                          "standalone Asio directory first")
        p = run([build / "consumer_boost"])
        expected = (f"consumer_boost: tether {repo_version(args.repo)}, C++20, Boost.Asio, "
                    "refused with 401, ok")
        if expected not in p.stdout:
            raise Failure(f"{name}: the program did not print '{expected}'")
        print(f"find_package-{name}: {expected}")


def kind_options(args):
    """Top-level option defaults, read from a configured cache."""
    def configure(name, *defines):
        build = fresh_dir(args.work / "options" / name)
        run([args.cmake, "-S", args.repo, "-B", build, "-G", args.generator,
             f"-DCMAKE_CXX_COMPILER={args.cxx}", *defines])
        cache = (build / "CMakeCache.txt").read_text()
        return dict(re.findall(r"^(TETHER_BUILD_\w+):BOOL=(\w+)$", cache, re.M))
    # Benchmarks and examples off: only the options are looked at.
    quiet = ["-DTETHER_BUILD_EXAMPLES=OFF", "-DTETHER_BUILD_BENCHMARKS=OFF"]
    got = configure("build_testing_off", "-DBUILD_TESTING=OFF", *quiet)
    if got.get("TETHER_BUILD_TESTS") != "OFF":
        raise Failure(f"-DBUILD_TESTING=OFF at top level left TETHER_BUILD_TESTS={got.get('TETHER_BUILD_TESTS')}")
    got = configure("defaults", *quiet)
    if got.get("TETHER_BUILD_TESTS") != "ON" or got.get("TETHER_BUILD_PACKAGING_TESTS") != "OFF":
        raise Failure(f"top-level defaults: expected tests ON, packaging tests OFF, got {got}")


KINDS = {
    "install": kind_install,
    "find_package": kind_find_package,
    "pkg_config": kind_pkg_config,
    "add_subdirectory": kind_add_subdirectory,
    "fetch_content": kind_fetch_content,
    "meson_subproject": kind_meson_subproject,
    "vendored": kind_vendored,
    "version_mismatch": kind_version_mismatch,
    "asio_config": kind_asio_config,
    "core_headers": kind_core_headers,
    "options": kind_options,
    "compiled": kind_compiled,
    "boost": kind_boost,
}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--repo", type=pathlib.Path, required=True, help="tether's source tree")
    parser.add_argument("--work", type=pathlib.Path, required=True, help="scratch directory")
    parser.add_argument("--build-dir", type=pathlib.Path, help="the main CMake build (for install)")
    parser.add_argument("--config", default="", help="build configuration (multi-config generators)")
    parser.add_argument("--cmake", default="cmake")
    parser.add_argument("--generator", default="Ninja")
    parser.add_argument("--cxx", default="c++")
    parser.add_argument("--sanitize", action="store_true", help="build consumers with ASan + UBSan")
    parser.add_argument("--installed", action="store_true",
                        help="asio_config, compiled: also test the installed package in WORK/prefix")
    args = parser.parse_args(argv)
    args.repo = args.repo.resolve()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        KINDS[args.kind](args)
    except Skip as e:
        print(f"SKIPPED: {e}")
        return SKIP
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(f"PASSED: {args.kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
