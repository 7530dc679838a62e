#!/usr/bin/env python3
"""Prints every metric name that the alert rules and the Grafana dashboards query.

Usage:
    scripts/metric-names.py                      # alerts.yml and every dashboard
    scripts/metric-names.py FILE...              # only these (.yml/.yaml rules, .json dashboards)
    scripts/metric-names.py --with-sources       # name<TAB>file,file... (for humans)
    scripts/metric-names.py --exclude-synthetic  # leave out series Prometheus makes itself

Output: one name per line, sorted, unique. Each is a series name exactly as written in the
expressions, which is how it appears in a service's `/metrics`: histogram series keep their
suffix (`http_request_duration_seconds_bucket`), so a consumer compares them with the first
token of each sample line of `/metrics` as they are. Series Prometheus synthesises rather than
scrapes (`up`, `ALERTS`, `ALERTS_FOR_STATE`, `scrape_*`) are printed too unless
`--exclude-synthetic` is given (tests/it/alerts.rs skips `up` itself, the same way). Names defined
by a recording rule (`record:`) are not printed: they are made by Prometheus, not scraped.

Where names come from:
  * deploy/prometheus/alerts.yml: the `expr:` of every rule (inline or a `|`/`>` block), read the
    way tests/it/alerts.rs reads it;
  * deploy/grafana/dashboards/*.json: every `expr` of a panel target (nested rows included) and
    every Prometheus query of a template variable (`label_values(<selector>, label)`,
    `query_result(...)`), after Grafana's variables (`$service`, `${DS}`, `$__rate_interval`,
    `[[var]]`) are taken out.

PromQL is tokenised rather than searched with a pattern: strings, comments, durations and
numbers are skipped; identifiers inside `{...}` are label names (except a `__name__` matcher,
whose string value names series: `{__name__=~"a|b"}` prints a and b); identifiers inside `[...]`
are durations; the label lists after by/without/on/ignoring/group_left/group_right are skipped;
an identifier followed by `(` is a function; aggregation operators, binary operators and
keywords are not names. Exit status 2 when a file cannot be read or parsed.
"""

import glob
import json
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_RULES = [os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")]
DEFAULT_DASHBOARDS = os.path.join(ROOT, "deploy", "grafana", "dashboards", "*.json")

SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE"}
SYNTHETIC_PREFIXES = ("scrape_",)

# Words that are never metric names where they appear bare (not followed by `(`).
KEYWORDS = {
    # aggregation operators (followed by `by`/`without` or `(`)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    # binary and set operators, modifiers
    "and", "or", "unless", "atan2", "bool", "by", "without", "on", "ignoring",
    "group_left", "group_right", "offset",
    # literals
    "inf", "nan",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:[a-zA-Z]+\d*)*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){}\[\],@])
    """,
    re.X,
)

GRAFANA_VARS = re.compile(r"\$\{[^}]*\}|\$__[a-zA-Z_]+|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[^\]]*\]\]")


class ParseError(Exception):
    pass


def tokens(expr):
    pos = 0
    out = []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ParseError(f"unexpected {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("space", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def names_in(expr):
    """The series names one PromQL expression reads."""
    # Grafana variables become a neutral placeholder: inside a string it stays a string; in a
    # range `[$__rate_interval]` it is skipped with the range.
    expr = GRAFANA_VARS.sub("x", expr)
    toks = tokens(expr)
    names = set()
    i = 0
    brace = bracket = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else (None, None)
        if text == "{" and kind == "op":
            brace += 1
        elif text == "}" and kind == "op":
            brace -= 1
        elif text == "[" and kind == "op":
            bracket += 1
        elif text == "]" and kind == "op":
            bracket -= 1
        elif brace > 0:
            # Label matchers: only a __name__ matcher names series.
            if kind == "ident" and text == "__name__" and i + 2 < len(toks):
                op, value = toks[i + 1][1], toks[i + 2]
                if value[0] == "string":
                    v = unquote(value[1])
                    if op == "=":
                        names.add(v)
                    elif op == "=~" and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\|[a-zA-Z_:][a-zA-Z0-9_:]*)*", v):
                        names.update(v.split("|"))
                    i += 2
        elif bracket > 0:
            pass  # durations and subquery steps
        elif kind == "ident":
            low = text.lower()
            if text in GROUPING and nxt[1] == "(":
                # Skip the label list: by (a, b)
                depth = 0
                while i < len(toks):
                    if toks[i][1] == "(":
                        depth += 1
                    elif toks[i][1] == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    i += 1
            elif nxt[1] == "(":
                pass  # a function or an aggregation: rate(, sum(, histogram_quantile(
            elif low in KEYWORDS or text in KEYWORDS:
                pass
            else:
                names.add(text)
        i += 1
    if brace != 0 or bracket != 0:
        raise ParseError(f"unbalanced braces or brackets in {expr!r}")
    return names


def rule_exprs(text):
    """The `expr:` of every rule and the names of recording rules, read line by line like
    tests/it/alerts.rs (no YAML library needed)."""
    exprs, records = [], set()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith("- "):
            stripped = stripped[2:].lstrip()
        m = re.match(r"record:\s*(\S+)", stripped)
        if m:
            records.add(m.group(1).strip("'\""))
        if not stripped.startswith("expr:"):
            i += 1
            continue
        rest = stripped[len("expr:"):].strip()
        if rest[:1] in ("|", ">"):
            indent = len(line) - len(line.lstrip())
            block = []
            i += 1
            while i < len(lines):
                nxt = lines[i]
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt)
                i += 1
            exprs.append("\n".join(block))
            continue
        if rest[:1] in ("'", '"') and rest[-1:] == rest[:1] and len(rest) > 1:
            rest = rest[1:-1].replace("''", "'") if rest[0] == "'" else json.loads(rest)
        else:
            rest = re.sub(r"\s+#.*$", "", rest)  # a trailing YAML comment
        exprs.append(rest)
        i += 1
    return exprs, records


def dashboard_exprs(doc):
    """Every Prometheus expression of a dashboard: panel targets and template variables."""
    exprs = []

    def panels(items):
        for p in items or []:
            for t in p.get("targets") or []:
                if isinstance(t, dict) and isinstance(t.get("expr"), str) and t["expr"].strip():
                    exprs.append(t["expr"])
            panels(p.get("panels"))

    panels(doc.get("panels"))
    for row in doc.get("rows") or []:  # the pre-5.0 layout
        panels(row.get("panels"))
    for v in (doc.get("templating") or {}).get("list") or []:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if not isinstance(q, str) or not q.strip():
            continue
        m = re.fullmatch(r"\s*label_values\((.*)\)\s*", q, re.S)
        if m:
            args = m.group(1)
            # label_values(label) has no selector; label_values(selector, label) has one.
            depth, split = 0, None
            for idx, c in enumerate(args):
                if c in "({[":
                    depth += 1
                elif c in ")}]":
                    depth -= 1
                elif c == "," and depth == 0:
                    split = idx
            if split is not None:
                exprs.append(args[:split])
            continue
        m = re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.S)
        if m:
            exprs.append(m.group(1))
        elif re.fullmatch(r"\s*(label_names|metrics)\(.*\)\s*", q, re.S):
            continue
        else:
            exprs.append(q)
    return exprs


def collect(paths):
    found = {}  # name -> set of files
    records = set()
    for path in paths:
        rel = os.path.relpath(path, ROOT)
        try:
            text = open(path, encoding="utf-8").read()
            if path.endswith(".json"):
                exprs = dashboard_exprs(json.loads(text))
            else:
                exprs, recs = rule_exprs(text)
                records |= recs
            for e in exprs:
                for n in names_in(e):
                    found.setdefault(n, set()).add(rel)
        except (OSError, ValueError, ParseError) as e:
            print(f"metric-names: {rel}: {e}", file=sys.stderr)
            sys.exit(2)
    for r in records:
        found.pop(r, None)
    return found


def is_synthetic(name):
    return name in SYNTHETIC or name.startswith(SYNTHETIC_PREFIXES)


def main(argv):
    flags = {a for a in argv if a.startswith("--")}
    unknown = flags - {"--with-sources", "--exclude-synthetic", "--help"}
    if "--help" in flags or unknown:
        print(__doc__.strip())
        return 0 if not unknown else 2
    paths = [a for a in argv if not a.startswith("--")]
    if not paths:
        paths = DEFAULT_RULES + sorted(glob.glob(DEFAULT_DASHBOARDS))
    found = collect(paths)
    for name in sorted(found):
        if "--exclude-synthetic" in flags and is_synthetic(name):
            continue
        if "--with-sources" in flags:
            print(f"{name}\t{','.join(sorted(found[name]))}")
        else:
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
