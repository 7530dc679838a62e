#!/usr/bin/env python3
"""Renders and validates every Helm chart under helm/, with no cluster and no network.

For each service chart, with its default values and with each production-like values file in
its ci/ directory:

  * `helm lint --strict` and a render, both through helm-python-sdk (Helm 4 as a library; the
    file:// dependency on helm/mas-lib is vendored into a temporary copy, never into the repo);
  * every rendered object against the Kubernetes OpenAPI schemas of KUBE_VERSION
    (kubernetes-validate, strict: unknown fields fail), and every custom resource against the
    openAPIV3Schema of its CRD kept in helm/schemas/ (jsonschema; unknown fields fail too);
  * what the platform relies on: probes on the kit's admin port, non-root and read-only pods,
    resource requests, the migration hook, Services and monitors that select what they should,
    session affinity for Socket.IO, secrets kept out of ConfigMaps, only variables a service reads.

Then negative cases: broken values or manifests that must be caught, so the checks are shown to
bite. One line per check; the last line is `charts: N passed, M failed`; exit status 1 on any
failure. Usage: scripts/check-charts.py [-v] [CHART ...]
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

import helm_python as helm

ROOT = Path(__file__).resolve().parent.parent
HELM_DIR = ROOT / "helm"
SCHEMA_DIR = HELM_DIR / "schemas"
KUBE_VERSION = "1.33.0"
NAMESPACE = "mas"

# Variables holding credentials: they must come from a Secret, never from a ConfigMap.
SECRET_VARS = {"DATABASE_URL", "REDIS_URL", "AMQP_URL", "SERVICE_ACCOUNTS"}
SECRET_SUFFIX = re.compile(r"(PASSWORD|SECRET|TOKEN|SECRET_ACCESS_KEY)$")


# ---------------------------------------------------------------------------------------------
# Reporting


@dataclass
class Results:
    verbose: bool = False
    quiet: bool = False
    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, why: str = "") -> bool:
        if ok:
            self.passed += 1
            if not self.quiet:
                print(f"ok   {name}")
        else:
            self.failed += 1
            self.failures.append(f"{name}: {why}")
            if not self.quiet:
                print(f"FAIL {name}: {why}")
        return ok

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"note {text}")


# ---------------------------------------------------------------------------------------------
# Rendering


def app_charts() -> list[str]:
    names = []
    for chart_yaml in sorted(HELM_DIR.glob("*/Chart.yaml")):
        meta = yaml.safe_load(chart_yaml.read_text())
        if meta.get("type", "application") == "application":
            names.append(chart_yaml.parent.name)
    return names


def workspace() -> Path:
    """A temporary copy of helm/ with each chart's file:// dependencies resolved into charts/."""
    tmp = Path(tempfile.mkdtemp(prefix="mas-charts-"))
    shutil.copytree(
        HELM_DIR,
        tmp / "helm",
        ignore=shutil.ignore_patterns("charts", "Chart.lock", "*.tgz"),
    )
    for name in app_charts():
        helm.dependency_update(tmp / "helm" / name)
    return tmp / "helm"


@dataclass
class Obj:
    source: str
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.doc.get("kind", "?")

    @property
    def name(self) -> str:
        return (self.doc.get("metadata") or {}).get("name", "?")

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def render(chart_dir: Path, values: dict[str, Any], release: str) -> list[Obj]:
    with helm.Chart.load(chart_dir) as chart:
        out = chart.render(values, name=release, namespace=NAMESPACE)
    objs = []
    for source, text in sorted(out.items()):
        if source.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objs.append(Obj(source, doc))
    return objs


# ---------------------------------------------------------------------------------------------
# Schemas


def strict(schema: Any) -> Any:
    """An openAPIV3Schema as JSON Schema that, like strict field validation, refuses fields it
    does not name."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON Schema, from every CRD in helm/schemas/."""
    schemas = {}
    for path in sorted(SCHEMA_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def object_meta_validator() -> jsonschema.protocols.Validator:
    """ObjectMeta from the same Kubernetes schemas, for the metadata of custom resources."""
    defs = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict/_definitions.json", KUBE_VERSION
    )
    registry = Resource.from_contents(defs) @ Registry()
    schema = {"$ref": defs["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


CRDS: dict[tuple[str, str], dict[str, Any]] = {}
META: jsonschema.protocols.Validator | None = None


def schema_error(obj: dict[str, Any]) -> str | None:
    """None if the object is valid for its kind, else the first error."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in CRDS:
        errors = sorted(
            jsonschema.Draft202012Validator(CRDS[key]).iter_errors(obj), key=lambda e: e.path
        )
        errors += list(META.iter_errors(obj.get("metadata") or {}))
        if errors:
            e = errors[0]
            return f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}"
        return None
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return f"no schema (add its CRD to helm/schemas/): {e.message}"
    return None


def schema_label(obj: dict[str, Any]) -> str:
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    return "CRD schema" if key in CRDS else f"kubernetes {KUBE_VERSION} schema"


# ---------------------------------------------------------------------------------------------
# Variables a service really reads


def documented_vars() -> dict[str, set[str]]:
    """docs/configuration.md: section title -> variable names in its tables' first column."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = set()
        elif current and line.startswith("| `"):
            first = line.split("|")[1]
            sections[current] |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return sections


def code_vars(path: Path) -> set[str]:
    """Variable names a config module reads (string literals that look like variables)."""
    if not path.exists():
        return set()
    return set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|RUST_LOG)"', path.read_text()))


def known_vars(service: str) -> set[str] | None:
    docs = documented_vars()
    own = docs.get(service, set()) | code_vars(ROOT / "services" / service / "src" / "config.rs")
    if not own:
        return None
    shared = docs.get("Shared by every service", set()) | code_vars(
        ROOT / "crates" / "kit" / "src" / "config.rs"
    )
    return own | shared | {"RUST_LOG"}


# ---------------------------------------------------------------------------------------------
# What the platform relies on


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_env_names(c: dict[str, Any]) -> list[str]:
    return [e["name"] for e in c.get("env") or []]


def semantic_checks(
    res: Results, label: str, chart: str, values: dict[str, Any], objs: list[Obj]
) -> None:
    by_kind: dict[str, list[Obj]] = {}
    for o in objs:
        by_kind.setdefault(o.kind, []).append(o)
    deployments = by_kind.get("Deployment", [])
    services = by_kind.get("Service", [])
    service_name = values.get("serviceName") or chart
    ports = values.get("ports") or {}

    res.check(f"{label} renders exactly one Deployment", len(deployments) == 1,
              f"found {len(deployments)}")
    for d in deployments:
        pod = d.doc["spec"]["template"]
        spec = pod["spec"]
        pod_labels = pod["metadata"].get("labels") or {}
        sel = d.doc["spec"]["selector"]["matchLabels"]
        res.check(f"{label} {d.ref}: selector matches its pod labels", matches(sel, pod_labels),
                  f"{sel} vs {pod_labels}")
        psc = spec.get("securityContext") or {}
        for c in spec["containers"]:
            where = f"{label} {d.ref} container {c['name']}"
            cports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            res.check(f"{where}: admin port {ports.get('admin')} is named admin",
                      cports.get("admin") == ports.get("admin"), f"ports {cports}")
            for probe, path in (("livenessProbe", "/health/live"),
                                ("readinessProbe", "/health/ready")):
                got = (c.get(probe) or {}).get("httpGet") or {}
                res.check(f"{where}: {probe} GET {path} on the admin port",
                          got.get("path") == path and got.get("port") in ("admin", ports.get("admin")),
                          f"{probe} is {c.get(probe)}")
            csc = c.get("securityContext") or {}
            non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
            uid = csc.get("runAsUser", psc.get("runAsUser"))
            res.check(f"{where}: runs as non-root", non_root and uid not in (None, 0),
                      f"runAsNonRoot={csc.get('runAsNonRoot', psc.get('runAsNonRoot'))} runAsUser={uid}")
            res.check(f"{where}: read-only root, no privilege escalation, no capabilities",
                      csc.get("readOnlyRootFilesystem") is True
                      and csc.get("allowPrivilegeEscalation") is False
                      and "ALL" in ((csc.get("capabilities") or {}).get("drop") or []),
                      f"securityContext {csc}")
            req = (c.get("resources") or {}).get("requests") or {}
            lim = (c.get("resources") or {}).get("limits") or {}
            res.check(f"{where}: cpu and memory requests, memory limit",
                      "cpu" in req and "memory" in req and "memory" in lim,
                      f"resources {c.get('resources')}")
            pre = ((c.get("lifecycle") or {}).get("preStop") or {})
            res.check(f"{where}: preStop sleep shorter than the grace period",
                      bool(pre) and int(spec.get("terminationGracePeriodSeconds", 30))
                      > int(values.get("preStopSleepSeconds") or 0),
                      f"preStop {pre}, grace {spec.get('terminationGracePeriodSeconds')}")
            names = container_env_names(c)
            expect = {"ADMIN_ADDR"} | ({"GRPC_ADDR"} if ports.get("grpc") else set()) | (
                {ports.get("httpEnv")} if ports.get("http") else set())
            res.check(f"{where}: listen addresses {sorted(expect)} from the ports",
                      expect <= set(names), f"env {names}")
            refs = [e for e in c.get("env") or [] if "valueFrom" in e]
            res.check(f"{where}: secrets by secretKeyRef only",
                      all("secretKeyRef" in e["valueFrom"] for e in refs), f"{refs}")
        # Services select these pods, and their target ports exist.
        all_ports = {p.get("name") for c in spec["containers"] for p in c.get("ports") or []}
        for s in services:
            ssel = s.doc["spec"].get("selector") or {}
            res.check(f"{label} {s.ref}: selects the {d.ref} pods", matches(ssel, pod_labels),
                      f"selector {ssel}")
            missing = [p["targetPort"] for p in s.doc["spec"]["ports"]
                       if isinstance(p.get("targetPort"), str) and p["targetPort"] not in all_ports]
            res.check(f"{label} {s.ref}: target ports exist on the pod", not missing,
                      f"missing {missing}")
        hpas = by_kind.get("HorizontalPodAutoscaler", [])
        for h in hpas:
            ref = h.doc["spec"]["scaleTargetRef"]
            res.check(f"{label} {h.ref}: scales {d.ref} which leaves replicas to it",
                      ref.get("kind") == "Deployment" and ref.get("name") == d.name
                      and "replicas" not in d.doc["spec"], f"target {ref}")
        for p in by_kind.get("PodDisruptionBudget", []):
            res.check(f"{label} {p.ref}: selects the {d.ref} pods",
                      matches(p.doc["spec"]["selector"].get("matchLabels") or {}, pod_labels),
                      f"{p.doc['spec']['selector']}")

    # gRPC: a headless Service for client-side balancing (DESIGN §4).
    if ports.get("grpc"):
        headless = [s for s in services if s.doc["spec"].get("clusterIP") == "None"]
        res.check(f"{label} headless Service for gRPC client balancing",
                  len(headless) == 1 and any(p["name"] == "grpc" for p in headless[0].doc["spec"]["ports"]),
                  f"headless services: {[s.name for s in headless]}")

    # The ServiceMonitor scrapes /metrics on the admin port of exactly one Service, as mas-<service>.
    for m in by_kind.get("ServiceMonitor", []):
        msel = m.doc["spec"]["selector"].get("matchLabels") or {}
        picked = [s for s in services if matches(msel, s.doc["metadata"].get("labels") or {})]
        res.check(f"{label} {m.ref}: selects exactly one Service", len(picked) == 1,
                  f"selects {[s.name for s in picked]}")
        if picked:
            svc_ports = {p["name"] for p in picked[0].doc["spec"]["ports"]}
            eps = m.doc["spec"].get("endpoints") or []
            res.check(f"{label} {m.ref}: scrapes /metrics on the Service's admin port",
                      bool(eps) and all(e.get("port") == "admin" and e.get("path") == "/metrics"
                                        and "admin" in svc_ports for e in eps), f"endpoints {eps}")
            job = (picked[0].doc["metadata"].get("labels") or {}).get(m.doc["spec"].get("jobLabel", ""))
            res.check(f"{label} {m.ref}: job label is mas-{service_name} (alerts match mas-.*)",
                      job == f"mas-{service_name}", f"job would be {job!r}")

    # The migration Job: a pre-install/pre-upgrade hook running `mas migrate <service>`, whose pod
    # no Service selects.
    jobs = by_kind.get("Job", [])
    if (values.get("migration") or {}).get("enabled"):
        res.check(f"{label} migration Job rendered", len(jobs) == 1, f"found {len(jobs)}")
    for j in jobs:
        ann = j.doc["metadata"].get("annotations") or {}
        hooks = set((ann.get("helm.sh/hook") or "").split(","))
        res.check(f"{label} {j.ref}: helm hook pre-install,pre-upgrade",
                  {"pre-install", "pre-upgrade"} <= hooks, f"annotations {ann}")
        jspec = j.doc["spec"]["template"]["spec"]
        cmd = jspec["containers"][0].get("command")
        res.check(f"{label} {j.ref}: runs mas migrate {service_name}",
                  cmd is not None and cmd[-2:] == ["migrate", service_name] and cmd[0].endswith("mas"),
                  f"command {cmd}")
        jlabels = j.doc["spec"]["template"]["metadata"].get("labels") or {}
        res.check(f"{label} {j.ref}: no Service selects its pod",
                  not any(matches(s.doc["spec"].get("selector") or {}, jlabels) for s in services),
                  f"labels {jlabels}")
        jc = jspec["containers"][0]
        jsc = jc.get("securityContext") or {}
        res.check(f"{label} {j.ref}: non-root, read-only root",
                  jsc.get("runAsNonRoot") is True and jsc.get("readOnlyRootFilesystem") is True,
                  f"securityContext {jsc}")
        missing = {e["name"] for c in (deployments[0].doc["spec"]["template"]["spec"]["containers"]
                                       if deployments else [])
                   for e in c.get("env") or [] if "valueFrom" in e} - set(container_env_names(jc))
        res.check(f"{label} {j.ref}: gets the same secrets as the Deployment", not missing,
                  f"missing {sorted(missing)}")

    # Ingress backends exist; Socket.IO gets session affinity.
    for ing in by_kind.get("Ingress", []):
        names = {s.name: {p["name"] for p in s.doc["spec"]["ports"]} for s in services}
        backends = [p["backend"]["service"] for r in ing.doc["spec"]["rules"]
                    for p in r["http"]["paths"]]
        res.check(f"{label} {ing.ref}: backends are this chart's Service ports",
                  bool(backends) and all(b["name"] in names and b["port"].get("name") in names[b["name"]]
                                         for b in backends), f"backends {backends}")
    paths = {p["path"] for ing in by_kind.get("Ingress", []) for r in ing.doc["spec"]["rules"]
             for p in r["http"]["paths"]}
    if chart == "gateway" and by_kind.get("Ingress"):
        res.check(f"{label} gateway Ingress routes /api and /admin/queues",
                  {"/api", "/admin/queues"} <= paths, f"paths {sorted(paths)}")
        res.check(f"{label} gateway Ingress does not take /socket.io", "/socket.io" not in paths,
                  f"paths {sorted(paths)}")
    if chart == "meetings-signalling":
        main = [s for s in services if s.doc["spec"].get("clusterIP") != "None"]
        res.check(f"{label} Service has sessionAffinity ClientIP",
                  bool(main) and all(s.doc["spec"].get("sessionAffinity") == "ClientIP" for s in main),
                  f"{[(s.name, s.doc['spec'].get('sessionAffinity')) for s in main]}")
        for ing in by_kind.get("Ingress", []):
            ann = ing.doc["metadata"].get("annotations") or {}
            res.check(f"{label} {ing.ref}: /socket.io with cookie affinity and long timeouts",
                      "/socket.io" in paths
                      and ann.get("nginx.ingress.kubernetes.io/affinity") == "cookie"
                      and int(ann.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "0")) >= 3600,
                      f"paths {sorted(paths)}, annotations {ann}")

    # Configuration: no credentials in ConfigMaps; only variables the service reads.
    for cm in by_kind.get("ConfigMap", []):
        bad = [k for k in cm.doc.get("data") or {}
               if k in SECRET_VARS or SECRET_SUFFIX.search(k)]
        res.check(f"{label} {cm.ref}: holds no credentials", not bad, f"move {bad} to secretEnv")
        numbers = [k for k, v in (cm.doc.get("data") or {}).items() if re.fullmatch(r"[0-9.]+e[+-][0-9]+", v)]
        res.check(f"{label} {cm.ref}: no number printed in exponent form", not numbers, f"{numbers}")
    known = known_vars(service_name)
    used = set()
    for cm in by_kind.get("ConfigMap", []):
        used |= set(cm.doc.get("data") or {})
    for d in deployments:
        for c in d.doc["spec"]["template"]["spec"]["containers"]:
            used |= set(container_env_names(c))
    if known is None:
        res.note(f"{label} variable names not checked: neither docs/configuration.md nor "
                 f"services/{service_name}/src/config.rs describes {service_name} yet "
                 f"(uses {', '.join(sorted(used))})")
    else:
        unknown = sorted(used - known)
        res.check(f"{label} every variable set is one {service_name} reads", not unknown,
                  f"unknown {unknown}")


def grpc_url_checks(res: Results, defaults: dict[str, dict[str, Any]]) -> None:
    """Every *_GRPC_URL a chart sets names the headless Service and gRPC port of a chart here
    (default release names)."""
    for chart, values in sorted(defaults.items()):
        for var, url in sorted((values.get("config") or {}).items()):
            if not var.endswith("_GRPC_URL") or not url:
                continue
            prefix = var[: -len("_GRPC_URL")].lower().replace("_", "-")
            # IDENTITY_GRPC_URL -> identity; MEETINGS_GRPC_URL (proto package mas.meetings) ->
            # meetings-signalling.
            found = [c for c in defaults if c == prefix or c.startswith(prefix + "-")]
            target = found[0] if len(found) == 1 else prefix
            tv = defaults.get(target)
            expect = f"http://{target}-headless:{(tv or {}).get('ports', {}).get('grpc')}"
            res.check(f"{chart} {var} is the {target} chart's headless gRPC Service",
                      tv is not None and url == expect, f"{url} (expected {expect})")


# ---------------------------------------------------------------------------------------------
# One rendering, start to finish


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing for the checks' own view of the values (null deletes a key)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def check_rendering(
    res: Results,
    ws: Path,
    chart: str,
    label: str,
    overrides: dict[str, Any],
    mutate: Callable[[list[Obj]], None] | None = None,
) -> None:
    chart_dir = ws / chart
    defaults = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    values = merged(defaults, overrides)
    lint = helm.lint(chart_dir, overrides, strict=True, namespace=NAMESPACE,
                     kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in lint["messages"] if m["severity"] >= 2] + lint.get("errors", [])
    res.check(f"{label} helm lint --strict", not problems, f"{problems}")
    try:
        objs = render(chart_dir, overrides, chart)
    except helm.HelmError as e:
        res.check(f"{label} renders", False, str(e).replace("\n", " "))
        return
    res.check(f"{label} renders ({len(objs)} objects)", bool(objs), "nothing rendered")
    if mutate:
        mutate(objs)
    for o in objs:
        err = schema_error(o.doc)
        res.check(f"{label} {o.ref} valid ({schema_label(o.doc)})", err is None, err or "")
    semantic_checks(res, label, chart, values, objs)


# ---------------------------------------------------------------------------------------------
# Negative cases: each must make at least one check fail, and the right one.


def drop_readiness(objs: list[Obj]) -> None:
    for o in objs:
        if o.kind == "Deployment":
            for c in o.doc["spec"]["template"]["spec"]["containers"]:
                c.pop("readinessProbe", None)


def typo_in_service_monitor(objs: list[Obj]) -> None:
    for o in objs:
        if o.kind == "ServiceMonitor":
            o.doc["spec"]["endpoints"][0]["port"] = 9090


NEGATIVE = [
    ("replicaCount \"two\" is rejected by the Kubernetes schema", "identity",
     {"replicaCount": "two"}, None, "schema): spec.replicas"),
    ("a misspelt container field is rejected (strict schema)", "gateway",
     {"extraEnv": [{"name": "X", "valu": "1"}]}, None, "Additional properties"),
    ("ServiceMonitor interval \"fast\" is rejected by the CRD schema", "notifier",
     {"serviceMonitor": {"enabled": True, "interval": "fast"}}, None, "(CRD schema): spec.endpoints.0.interval"),
    ("a ServiceMonitor endpoint port given as a number is rejected by the CRD schema", "identity",
     {"serviceMonitor": {"enabled": True}}, typo_in_service_monitor, "(CRD schema): spec.endpoints.0.port"),
    ("a pod running as root is refused", "meetings-signalling",
     {"securityContext": {"runAsNonRoot": False, "runAsUser": 0},
      "podSecurityContext": {"runAsNonRoot": False, "runAsUser": 0}}, None, "runs as non-root"),
    ("a Deployment without a readiness probe is refused", "notifier", {}, drop_readiness,
     "readinessProbe GET /health/ready"),
    ("a signalling Ingress without cookie affinity is refused", "meetings-signalling",
     {"ingress": {"enabled": True, "annotations": None}}, None, "cookie affinity"),
    ("a password in the ConfigMap is refused", "gateway",
     {"config": {"OPS_DASHBOARD_PASSWORD": "correct-horse-battery"}}, None, "holds no credentials"),
    ("a variable the service does not read is refused", "identity",
     {"config": {"IDENTITY_DATABASE_URL_TYPO": "x"}}, None, "every variable set is one"),
    ("a FINANCE_GRPC_URL copied into finance (which reads none) is refused", "finance",
     {"config": {"FINANCE_GRPC_URL": "http://finance-headless:50051"}},
     None, "every variable set is one finance reads"),
    ("finance's NOTIFIER_GRPC_URL copied into lms (which emails nothing) is refused", "lms",
     {"config": {"NOTIFIER_GRPC_URL": "http://notifier-headless:50051"}},
     None, "every variable set is one lms reads"),
    ("a migration Job without its hook is refused", "identity", {},
     lambda objs: [o.doc["metadata"]["annotations"].pop("helm.sh/hook")
                   for o in objs if o.kind == "Job"], "helm hook pre-install,pre-upgrade"),
]


# ---------------------------------------------------------------------------------------------


def main() -> int:
    global CRDS, META
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("charts", nargs="*", help="charts to check (default: all)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the negative cases' failures")
    args = ap.parse_args()

    res = Results(verbose=args.verbose)
    CRDS = crd_schemas()
    META = object_meta_validator()
    charts = args.charts or app_charts()
    print(f"== charts: {', '.join(charts)} (Helm {helm.helm_sdk_version()}, "
          f"Kubernetes {KUBE_VERSION} schemas, CRDs: {', '.join(k for _, k in sorted(CRDS))})")

    # The CRDs kept for validation are themselves valid CustomResourceDefinitions.
    for path in sorted(SCHEMA_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd:
                try:
                    kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)
                    err = None
                except kubernetes_validate.ValidationError as e:
                    err = f"{'.'.join(str(p) for p in e.path)}: {e.message}"
                res.check(f"helm/schemas/{path.name} is a valid CustomResourceDefinition",
                          err is None, err or "")

    ws = workspace()
    try:
        for chart in app_charts():
            deps = helm.dependency_list(ws / chart)
            res.check(f"{chart} dependencies resolve offline ({', '.join(d['name'] for d in deps)})",
                      all(d["status"] == "ok" for d in deps), f"{deps}")
        for chart in charts:
            check_rendering(res, ws, chart, f"{chart}[default]", {})
            for vf in sorted((ws / chart / "ci").glob("*.yaml")):
                overrides = yaml.safe_load(vf.read_text()) or {}
                check_rendering(res, ws, chart, f"{chart}[ci/{vf.name}]", overrides)
        defaults = {c: yaml.safe_load((ws / c / "values.yaml").read_text()) for c in app_charts()}
        grpc_url_checks(res, defaults)

        print("== negative cases: each must be caught")
        for title, chart, overrides, mutate, expect in NEGATIVE:
            probe = Results(quiet=True)
            check_rendering(probe, ws, chart, f"{chart}[negative]", overrides, mutate)
            caught = [f for f in probe.failures if expect in f]
            res.check(f"negative: {title}", bool(caught),
                      f"not caught (expected a failure containing {expect!r}); "
                      f"failures were: {probe.failures or 'none'}")
            if caught and args.verbose:
                print(f"       caught: {caught[0][:300]}")
    finally:
        shutil.rmtree(ws.parent, ignore_errors=True)

    print(f"charts: {res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
