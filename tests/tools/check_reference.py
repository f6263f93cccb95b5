#!/usr/bin/env python3
"""Fails when docs/reference.md no longer matches the public headers.

    check_reference.py [--repo DIR]

What is read from include/tether/ and must be in the reference:

- every data member of every public options struct (any `struct *_options`
  or nested `struct options` outside detail/, plus the few option structs
  named below), with its default: the reference's "default" cell is turned
  into a value (`5 s`, `16 MiB`, `true`, `reject`, `"access_token"`, `-` for
  "no initializer") and compared with the header's initializer;
- every field of the event and result structs listed in EVENT_STRUCTS (name
  only);
- every enumerator of `tether::error`, with its number and, where
  `default_error_condition` maps it, its `std::errc` condition (and no
  condition where it does not);
- every counter of the TETHER_CLIENT_COUNTERS X-macro;
- every public member function of basic_reconnecting_client (the handler
  registrations on_* included) and of genesys::notification_stream;
- every `reconnect_decision` factory;
- the client constructor's parameters, in order, and its template
  parameters with their defaults;
- the concept tables of the four concept headers, also in the generated
  single_include/tether/tether.hpp (what a vendoring user copies);
- the name of every public type (namespace-scope struct, class, enum or alias
  outside detail/), somewhere in the reference in backticks.

The reference documents a struct in a section whose heading names it in
backticks (### `client_options`), with a Markdown table whose first column
is the field name in backticks and, for options, a column titled "default".

Each category must find something in the headers (a refactor that renames a
struct or moves the X-macro fails here instead of making the check vacuous).
Python 3 standard library only.
"""

import argparse
import pathlib
import re
import sys

# Option structs the `*_options` naming does not catch.
EXTRA_OPTION_STRUCTS = ["backoff_ladder", "backoff_ladders", "parse_limits"]

# Structs whose fields are documented by name (no default column).
EVENT_STRUCTS = [
    "state_change_event", "open_event", "retry_event", "token_event", "token_failure_event",
    "stopped_event", "dropped_message", "close_event", "reconnect_decision", "message_view",
    "token", "token_result", "connect_request", "open_info",
    "shared_token_stats", "close_code_rule",
    "genesys::notification", "genesys::gap_event", "genesys::handover_event",
    "genesys::system_event", "genesys::system_message", "genesys::rejected_frame",
    "genesys::channel_event", "genesys::channel_stats", "genesys::stream_counters",
    "genesys::rest_outcome", "genesys::endpoints",
]

DURATION_NS = {
    "nanoseconds": 1, "microseconds": 10**3, "milliseconds": 10**6, "seconds": 10**9,
    "minutes": 60 * 10**9, "hours": 3600 * 10**9,
}
DOC_UNITS_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "min": 60 * 10**9,
                "h": 3600 * 10**9}
DOC_UNITS_BYTES = {"B": 1, "bytes": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
EMPTY_WORDS = re.compile(r"^(?:-|—|–|empty|none|no default|\{\}|see\b.*|its defaults.*|"
                         r"defaults\b.*|all defaults.*|\(.*\))$", re.I)

failures = []


def fail(msg):
    failures.append(msg)


# ---------------------------------------------------------------- C++ side

def strip_comments(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(text, i, open_c="{", close_c="}"):
    """Index of the bracket closing the one at text[i]; string literals skipped."""
    depth, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j
        elif c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced " + open_c)


def find_struct_body(code, name):
    """Body text of `struct name {` / `class name {` (the first definition)."""
    m = re.search(r"\b(?:struct|class)\s+" + re.escape(name) + r"\b[^;{(]*\{", code)
    if not m:
        return None
    start = m.end() - 1
    return code[start + 1:matching(code, start)]


def split_members(body):
    """Top-level statements of a class body, function bodies and nested types dropped."""
    stmts, cur, i, n = [], [], 0, len(body)
    while i < n:
        c = body[i]
        if c == '"':
            j = i + 1
            while j < n and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            cur.append(body[i:j + 1])
            i = j + 1
            continue
        if c == "(":
            j = matching(body, i, "(", ")")
            cur.append(body[i:j + 1])
            i = j + 1
            continue
        if c == "{":
            head = "".join(cur).strip()
            j = matching(body, i)
            if re.match(r"^(?:template\s*<.*>\s*)?(?:struct|class|enum|union)\b", head, re.S):
                k = body.find(";", j)  # nested type: skip it and its ';'
                cur, i = [], (k + 1 if k >= 0 else n)
                continue
            if head.endswith(")") or re.search(r"\)\s*(?:const|noexcept|override|final|\s)*$", head):
                cur, i = [], j + 1  # a function body
                continue
            cur.append(body[i:j + 1])  # brace initializer
            i = j + 1
            continue
        if c == ";":
            stmts.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    out = []
    for s in stmts:
        s = re.sub(r"^(?:(?:public|private|protected)\s*:\s*)+", "", s).strip()
        if s:
            out.append(" ".join(s.split()))
    return out


def data_members(body):
    """[(name, type, initializer or None)] of a struct body."""
    members = []
    for s in split_members(body):
        if re.match(r"^(?:using|friend|static|template|typedef|enum|struct|class)\b", s):
            continue
        init = None
        eq = top_level_index(s, "=")
        if eq >= 0:
            lhs, init = s[:eq].strip(), s[eq + 1:].strip()
        elif s.endswith("}") and "{" in s:
            k = top_level_index(s, "{")
            lhs, init = s[:k].strip(), s[k + 1:-1].strip()
        else:
            lhs = s
        if lhs.endswith(")") or "operator" in lhs:
            continue  # a function declaration
        m = re.match(r"^(.*?)\b([A-Za-z_]\w*)$", lhs)
        if not m or not m.group(1).strip():
            continue
        members.append((m.group(2), m.group(1).strip(), init))
    return members


def top_level_index(s, ch):
    depth = 0
    for i, c in enumerate(s):
        if c in "(<[":
            depth += 1
        elif c in ")>]":
            depth -= 1
        elif c == "{" and ch != "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == ch and depth == 0:
            if ch == "=" and (s[i + 1:i + 2] == "=" or s[i - 1:i] in "=!<>"):
                continue
            return i
    return -1


def split_top_commas(s):
    parts, depth, cur = [], 0, []
    for c in s:
        if c in "(<[{":
            depth += 1
        elif c in ")>]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


# A default in comparable form: ('dur', ns) ('num', n) ('bool', b) ('enum', name)
# ('str', s) ('empty',) ('list', [...]) or ('raw', text) when not understood.


def arith(expr):
    expr = re.sub(r"(\d)(?:u|U|ul|UL|ull|ULL|l|L)\b", r"\1", expr)
    if not re.fullmatch(r"[\d\s.+\-*/()]+", expr):
        return None
    try:
        return eval(expr, {"__builtins__": {}}, {})  # digits and operators only
    except Exception:
        return None


def header_value(type_, init, macros):
    if init is None or init.strip() == "":
        return ("empty",)
    init = init.strip()
    if len(split_top_commas(init)) > 1:
        return ("list", [header_value("", p, macros) for p in split_top_commas(init)])
    dur = re.match(r"(?:std::)?chrono::(\w+)$", type_.strip())
    if dur or re.match(r"^std::chrono::\w+\(", init):
        def repl(m):
            return "(%s*%d)" % (m.group(2), DURATION_NS[m.group(1)])
        e = re.sub(r"std::chrono::(\w+)\(([^()]*)\)", repl, init)
        if dur and dur.group(1) in DURATION_NS and re.fullmatch(r"[\d\s.+\-*/]+", e):
            e = "(%s)*%d" % (e, DURATION_NS[dur.group(1)])
        v = arith(e)
        if v is not None:
            return ("dur", int(v))
        return ("raw", init)
    if init in ("true", "false"):
        return ("bool", init == "true")
    if re.fullmatch(r"[\w:]+::\w+", init):
        return ("enum", init.split("::")[-1])
    if init.startswith('"'):
        pieces = [p.strip() for p in init.split("+")]
        text = ""
        for p in pieces:
            lit = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', p)
            mac = re.fullmatch(r"std::to_string\((\w+)\)", p)
            if lit:
                text += lit.group(1)
            elif mac and mac.group(1) in macros:
                text += macros[mac.group(1)]
            else:
                return ("raw", init)
        return ("str", text)
    v = arith(init)
    if v is not None:
        return ("num", v)
    return ("raw", init)


def doc_value(cell, expect):
    """Turns a reference 'default' cell into a value of the kind `expect` has."""
    cell = cell.strip()
    plain = cell.replace("`", "").strip()
    if expect[0] == "list":
        parts = [p.strip() for p in plain.split(",")]
        return ("list", [doc_value(p, e) for p, e in zip(parts, expect[1])]
                + [("raw", p) for p in parts[len(expect[1]):]])
    if EMPTY_WORDS.match(plain):
        return ("empty",)
    if expect[0] == "str":
        m = re.match(r'^"((?:[^"\\]|\\.)*)"', plain)
        return ("str", m.group(1)) if m else ("raw", plain)
    if expect[0] == "bool":
        m = re.match(r"^(true|false)\b", plain)
        return ("bool", m.group(1) == "true") if m else ("raw", plain)
    if expect[0] == "enum":
        m = re.match(r"^([\w:]+)", plain)
        return ("enum", m.group(1).split("::")[-1]) if m else ("raw", plain)
    m = re.match(r"^(?:[A-Za-z]+\s+)?(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|min|h|B|bytes|KiB|MiB|GiB)?"
                 r"(?![\w])", plain)
    if not m:
        return ("raw", plain)
    number = float(m.group(1))
    unit = m.group(2)
    if expect[0] == "dur":
        if unit in DOC_UNITS_NS:
            return ("dur", int(round(number * DOC_UNITS_NS[unit])))
        if number == 0 and unit is None:
            return ("dur", 0)
        return ("raw", plain + "  <- a duration needs a unit (ms, s, min, h)")
    if expect[0] == "num":
        if unit in DOC_UNITS_BYTES:
            return ("num", number * DOC_UNITS_BYTES[unit])
        if unit is None:
            return ("num", number)
    return ("raw", plain)


def same(a, b):
    if a[0] != b[0]:
        return False
    if a[0] == "list":
        return len(a[1]) == len(b[1]) and all(same(x, y) for x, y in zip(a[1], b[1]))
    if a[0] == "num":
        return abs(float(a[1]) - float(b[1])) < 1e-9
    if a[0] == "raw":
        return " ".join(a[1].split()) == " ".join(b[1].split())
    return a[1:] == b[1:]


def show(v):
    kinds = {"dur": lambda x: "%g ms" % (x / 1e6),
             "num": lambda x: "%d" % x if float(x).is_integer() else "%g" % x,
             "bool": lambda x: str(x).lower(), "enum": str, "str": lambda x: '"%s"' % x,
             "raw": str}
    if v[0] == "empty":
        return "no initializer (write '-')"
    if v[0] == "list":
        return ", ".join(show(x) for x in v[1])
    return kinds[v[0]](v[1])


# ---------------------------------------------------------------- doc side

def doc_sections(doc):
    """{struct name: section text} for headings that name a struct in backticks."""
    sections = {}
    heads = list(re.finditer(r"^(#{2,5})\s+(.*)$", doc, re.M))
    for k, h in enumerate(heads):
        # a section runs to the next heading of the same or a higher level
        level = len(h.group(1))
        end = next((x.start() for x in heads[k + 1:] if len(x.group(1)) <= level), len(doc))
        for name in re.findall(r"`([\w:]+)`", h.group(2)):
            sections.setdefault(name, doc[h.end():end])
    return sections


def doc_tables(text):
    """[(header cells, [row cells])] of the Markdown tables in `text`."""
    tables, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and \
                re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            header = cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def cells(line):
    line = line.strip().strip("|")
    parts, cur, tick = [], [], False
    for c in line:
        if c == "`":
            tick = not tick
        if c == "|" and not tick:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur).strip())
    return parts


def first_cell_names(cell):
    return re.findall(r"`([\w:]+)(?:\(.*?\))?`", cell)


def rows_by_name(section):
    rows = {}
    for header, body in doc_tables(section):
        for r in body:
            for n in first_cell_names(r[0]):
                rows.setdefault(n, (header, r))
                rows.setdefault(n.split("::")[-1], (header, r))
    return rows


# ---------------------------------------------------------------- checks

def lookup_section(sections, qualified):
    unscoped = re.sub(r"^(?:genesys|testing)::", "", qualified)
    for key in (qualified, unscoped):
        if key in sections:
            return sections[key]
    return None


def check_option_struct(qualified, members, sections, macros):
    section = lookup_section(sections, qualified)
    if section is None:
        fail(f"{qualified}: no section in the reference (a heading with `{qualified}`)")
        return
    rows = rows_by_name(section)
    for name, type_, init in members:
        if name not in rows:
            fail(f"{qualified}::{name}: not in the reference's `{qualified}` table")
            continue
        header, row = rows[name]
        try:
            col = [h.lower() for h in header].index("default")
        except ValueError:
            fail(f"{qualified}: its table has no 'default' column")
            return
        expect = header_value(type_, init, macros)
        got = doc_value(row[col] if col < len(row) else "", expect)
        if not same(expect, got):
            fail(f"{qualified}::{name}: the header's default is {show(expect)} "
                 f"(`{init}`), the reference says '{row[col] if col < len(row) else ''}'")


def check_names(qualified, members, sections):
    section = lookup_section(sections, qualified)
    if section is None:
        fail(f"{qualified}: no section in the reference (a heading with `{qualified}`)")
        return
    rows = rows_by_name(section)
    for name, _, _ in members:
        if name not in rows:
            fail(f"{qualified}::{name}: field not in the reference's `{qualified}` table")


def option_structs(include, code_of):
    """{qualified name: members} for every public options struct."""
    found = {}
    for path in sorted(include.rglob("*.hpp")):
        rel = path.relative_to(include)
        if "detail" in rel.parts:
            continue
        code = code_of(path)
        ns = "genesys::" if "genesys" in rel.parts else ("testing::" if "testing" in rel.parts
                                                         else "")
        for m in re.finditer(r"\bstruct\s+(\w+_options)\s*\{", code):
            found[ns + m.group(1)] = m.group(1)
        for m in re.finditer(r"\bstruct\s+options\s*\{", code):
            owner = None
            for c in re.finditer(r"\b(?:class|struct)\s+(\w+)\b[^;{(]*\{", code[:m.start()]):
                owner = c.group(1)
            if owner:
                found[ns + owner + "::options"] = (owner, "options")
        for name in EXTRA_OPTION_STRUCTS:
            if re.search(r"\bstruct\s+" + name + r"\s*\{", code):
                found[ns + name] = name
    return found


def members_of(code, spec):
    if isinstance(spec, tuple):
        outer = find_struct_body(code, spec[0])
        return data_members(find_struct_body(outer, spec[1])) if outer else None
    body = find_struct_body(code, spec)
    return data_members(body) if body is not None else None


def public_functions(body, default_access="private"):
    """Names of the public member functions of a class body (nested types skipped)."""
    names, access, buf, i, n = set(), default_access, [], 0, len(body)

    def record(head):
        head = re.sub(r"^template\s*<.*?>\s*(?=[\w~])", "", " ".join(head.split()))
        k = head.find("(")
        if k < 0 or access != "public" or head.startswith(("using", "static_assert", "friend")):
            return
        m = re.search(r"(~?[A-Za-z_]\w*)\s*$", head[:k])
        if m and m.group(1) != "operator" and not head[:k].rstrip().endswith("operator"):
            names.add(m.group(1))

    while i < n:
        c = body[i]
        if c == '"':
            j = i + 1
            while j < n and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            buf.append(body[i:j + 1])
            i = j + 1
            continue
        if c == "(":
            j = matching(body, i, "(", ")")
            buf.append(body[i:j + 1])
            i = j + 1
            continue
        if c == "{":
            head = "".join(buf).strip()
            j = matching(body, i)
            if re.match(r"^(?:template\s*<.*>\s*)?(?:struct|class|enum|union)\b", head, re.S):
                k = body.find(";", j)
                buf, i = [], (k + 1 if k >= 0 else n)
                continue
            if "(" in head and not re.search(r"=\s*$", head):
                record(head)
                buf, i = [], j + 1
                continue
            buf.append(body[i:j + 1])
            i = j + 1
            continue
        if c == ";":
            record("".join(buf).strip())
            buf, i = [], i + 1
            continue
        buf.append(c)
        i += 1
        tail = "".join(buf[-12:])
        m = re.search(r"\b(public|private|protected)\s*:$", tail)
        if m and body[i:i + 1] != ":":
            access, buf = m.group(1), []
    return names


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parents[2])
    args = ap.parse_args(argv)
    repo = args.repo.resolve()
    include = repo / "include" / "tether"
    doc_path = repo / "docs" / "reference.md"
    doc = doc_path.read_text(encoding="utf-8")
    sections = doc_sections(doc)
    cache = {}

    def code_of(path):
        if path not in cache:
            cache[path] = strip_comments(path.read_text(encoding="utf-8"))
        return cache[path]

    def header(rel):
        p = include / rel
        if not p.is_file():
            fail(f"include/tether/{rel} is gone: update tests/tools/check_reference.py")
            return ""
        return code_of(p)

    macros = dict(re.findall(r"#define\s+(TETHER_VERSION_(?:MAJOR|MINOR|PATCH))\s+(\d+)",
                             header("version.hpp")))
    counts = {}

    # 1. options, with defaults
    structs = option_structs(include, code_of)
    all_code = "\n".join(code_of(p) for p in sorted(include.rglob("*.hpp"))
                         if "detail" not in p.relative_to(include).parts)
    for must in ["client_options", "websocketpp_transport_options", "tls_options",
                 "oauth2_options", "shared_token_options", "default_close_policy::options",
                 "backoff_ladder", "backoff_ladders"]:
        if must not in structs:
            fail(f"option struct {must} not found in the headers: update check_reference.py")
    n = 0
    for qualified, spec in sorted(structs.items()):
        members = members_of(all_code, spec)
        if not members:
            fail(f"{qualified}: no data members parsed: update check_reference.py")
            continue
        n += len(members)
        check_option_struct(qualified, members, sections, macros)
    counts["option fields"] = n
    client_fields = members_of(all_code, "client_options") or []
    if len(client_fields) < 10:
        fail(f"only {len(client_fields)} client_options fields parsed: the parser is broken")

    # 2. event and result structs, by name
    n = 0
    for qualified in EVENT_STRUCTS:
        members = members_of(all_code, qualified.split("::")[-1])
        if not members:
            fail(f"{qualified}: not found or no fields parsed: update check_reference.py")
            continue
        n += len(members)
        check_names(qualified, members, sections)
    counts["event fields"] = n

    # 3. error codes: name, number, std::errc condition
    err = header("error.hpp")
    body = re.search(r"enum\s+class\s+error\s*\{(.*?)\};", err, re.S)
    enumerators, value = [], 0
    for item in split_top_commas(body.group(1) if body else ""):
        m = re.match(r"^(\w+)\s*(?:=\s*(\d+))?$", item.strip())
        if m:
            value = int(m.group(2)) if m.group(2) else value + 1
            enumerators.append((m.group(1), value))
    conditions, pending = {}, []
    cond_body = err[err.find("default_error_condition"):err.find("std::string message(")]
    for m in re.finditer(r"case\s+error::(\w+)\s*:|return\s+std::errc::(\w+)", cond_body):
        if m.group(1):
            pending.append(m.group(1))
        else:
            for e in pending:
                conditions[e] = m.group(2)
            pending = []
    if len(enumerators) < 20 or not conditions:
        fail(f"error.hpp: {len(enumerators)} enumerators, {len(conditions)} conditions parsed: "
             "the parser is broken")
    rows = rows_by_name(lookup_section(sections, "error") or "")
    for name, num in enumerators:
        if name not in rows:
            fail(f"error::{name}: not in the reference's `error` table")
            continue
        text = " | ".join(rows[name][1])
        if not re.search(r"(?<![\w.])%d(?![\w.])" % num, text):
            fail(f"error::{name}: its value {num} is not in its row")
        cond = conditions.get(name)
        named = re.findall(r"std::errc::(\w+)", text)
        if cond and cond not in named:
            fail(f"error::{name}: compares equal to std::errc::{cond}; its row does not say so")
        if not cond and named:
            fail(f"error::{name}: its row names std::errc::{named[0]}, the category maps none")
    counts["error codes"] = len(enumerators)

    # 4. counters
    ev = header("events.hpp")
    macro, lines = "", ev.splitlines()
    for k, line in enumerate(lines):
        if re.match(r"\s*#\s*define\s+TETHER_CLIENT_COUNTERS\(X\)", line):
            while k < len(lines) and lines[k].rstrip().endswith("\\"):
                k += 1
                macro += lines[k] + "\n" if k < len(lines) else ""
            break
    counters = re.findall(r"X\((\w+)\s*,", macro)
    if not counters:
        fail("events.hpp: no TETHER_CLIENT_COUNTERS entries found: the parser is broken")
    rows = rows_by_name(lookup_section(sections, "client_counters") or "")
    for c in counters:
        if c not in rows:
            fail(f"counter {c}: not in the reference's `client_counters` table")
    counts["counters"] = len(counters)

    # 5. public member functions (handler registrations included)
    n = 0
    for rel, cls in [("basic_reconnecting_client.hpp", "basic_reconnecting_client"),
                     ("genesys/notification_stream.hpp", "notification_stream")]:
        body = find_struct_body(header(rel), cls)
        names = sorted(public_functions(body or "") - {cls, "~" + cls})
        handlers = [f for f in names if f.startswith("on_")]
        if len(handlers) < 3:
            fail(f"{cls}: {len(handlers)} handler registrations parsed: the parser is broken")
        section = lookup_section(sections, cls) or ""
        for f in names:
            if not re.search(r"`(?:[\w:<>]+::)?%s\(" % re.escape(f), section):
                fail(f"{cls}::{f}(): not in the reference's `{cls}` section")
        # the handler's argument types, when the header spells them
        for m in re.finditer(r"\b(on_\w+)\s*\(\s*std::function<void\((.*?)\)>", body or ""):
            args = " ".join(m.group(2).split())
            if args and args not in " ".join(section.split()):
                fail(f"{cls}::{m.group(1)}: its handler takes ({args}); the reference "
                     "does not show that signature")
        n += len(names)
    counts["client and stream member functions"] = n

    # 6. reconnect_decision factories
    ce = header("close_event.hpp")
    rd = find_struct_body(ce, "reconnect_decision") or ""
    factories = re.findall(r"static\s+reconnect_decision\s+(\w+)\s*\(", rd)
    if not factories:
        fail("close_event.hpp: no reconnect_decision factories found: the parser is broken")
    rd_section = lookup_section(sections, "reconnect_decision") or ""
    table_cells = [r[0] for _, rows_ in doc_tables(rd_section) for r in rows_]
    for f in factories:
        if not any(f"reconnect_decision::{f}(" in c for c in table_cells):
            fail(f"reconnect_decision::{f}(): not in the reference's factory table "
                 "(`reconnect_decision` section)")
    counts["reconnect_decision factories"] = len(factories)

    # 7. constructor order and template defaults
    brc = header("basic_reconnecting_client.hpp")
    ctor = re.search(r"explicit\s+basic_reconnecting_client\s*\((.*?)\)\s*:", brc, re.S)
    if not ctor:
        fail("basic_reconnecting_client's constructor not found: the parser is broken")
    else:
        want = [p.split()[0] for p in split_top_commas(" ".join(ctor.group(1).split()))]
        shown = []
        for m in re.finditer(r"basic_reconnecting_client\s*\(", doc):
            k = m.end() - 1
            try:
                inner = doc[k + 1:matching(doc, k, "(", ")")]
            except ValueError:
                continue
            shown.append([p.split()[0] for p in split_top_commas(" ".join(inner.split()))
                          if p.split()])
        if want not in shown:
            fail("the reference never shows the constructor as basic_reconnecting_client(" +
                 ", ".join(want) + ")")
    tmpl = re.search(r"template\s*<([^>]*)>\s*class\s+basic_reconnecting_client\b", brc)
    if tmpl:
        flat = " ".join(tmpl.group(1).split())
        if flat not in " ".join(doc.split()):
            fail(f"the reference does not show the template parameters <{flat}>")
    else:
        fail("basic_reconnecting_client's template head not found: the parser is broken")

    # 8. concept tables, in the headers and in the single header
    single = repo / "single_include" / "tether" / "tether.hpp"
    single_text = single.read_text(encoding="utf-8") if single.is_file() else ""
    if not single_text:
        fail("single_include/tether/tether.hpp is missing: run tests/tools/amalgamate.py")
    for rel in ["transport/concept.hpp", "token_policy/concept.hpp", "close_policy/concept.hpp",
                "backoff/concept.hpp"]:
        raw = (include / rel).read_text(encoding="utf-8")
        table = [l for l in raw.splitlines() if re.match(r"^// \|.*\|\s*$", l)]
        if len(table) < 3:
            fail(f"include/tether/{rel}: its valid-expression table is gone from the comment")
        elif not all(l in single_text for l in table):
            fail(f"single_include/tether/tether.hpp lacks the table of {rel}: "
                 "run tests/tools/amalgamate.py")
        if f"({rel})" not in doc and f"{rel})" not in doc:
            fail(f"the reference does not link include/tether/{rel}")

    # links to files of the repository resolve
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc):
        if not re.match(r"^[a-z]+:", target) and not (doc_path.parent / target).exists():
            fail(f"the reference links {target}, which does not exist")

    # 9. every public type name (namespace scope, outside detail) is named somewhere
    types = set()
    for path in sorted(include.rglob("*.hpp")):
        if "detail" in path.relative_to(include).parts:
            continue
        code = code_of(path)
        for m in list(re.finditer(r"\bnamespace\s+detail\s*\{", code))[::-1]:
            k = m.end() - 1
            code = code[:m.start()] + code[matching(code, k) + 1:]
        for m in re.finditer(r"^(?:template\s*<[^\n]*>\s*)?(?:struct|class|enum\s+class|enum|using)"
                             r"\s+(\w+)\b(?!\s*::)", code, re.M):
            if m.group(1) not in ("namespace", "is_error_code_enum"):
                types.add(m.group(1))
    if len(types) < 50:
        fail(f"only {len(types)} public type names found: the parser is broken")
    for t in sorted(types):
        if not re.search(r"`[^`\n]*\b%s\b[^`\n]*`" % re.escape(t), doc):
            fail(f"public type {t}: not named (in backticks) anywhere in the reference")
    counts["public type names"] = len(types)

    for what, k in counts.items():
        print(f"check_reference: {k} {what}")
    if failures:
        for f in failures:
            print("check_reference: " + f, file=sys.stderr)
        print(f"check_reference: {len(failures)} problem(s); docs/reference.md must match the "
              "headers", file=sys.stderr)
        return 1
    print("check_reference: docs/reference.md matches the headers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
