#!/usr/bin/env python3
"""Tests for deploy/alertmanager/alertmanager.yml.

1. `amtool check-config` accepts the file, and the file holds no secret (only *_file references).
2. `amtool config routes test --verify.receivers=...`: critical goes to email and chat, warning
   to chat only, anything else to chat.
3. The alert names the routes and inhibition rules rely on exist in deploy/prometheus/alerts.yml,
   and ServiceDown carries the `service` label the inhibition matches on.
4. Live: a real Alertmanager (`prometheus-alertmanager`, Debian's package, which also ships
   `amtool`) runs a copy of the file whose secrets point at local catchers (an HTTP server for
   the chat webhook, a minimal SMTP server for email). Alerts are posted to it; the test checks
   which are inhibited (API v2) and which notifications reach each receiver.

One line per case, then `alertmanager: N passed, M failed`; exit status 1 on any failure.
Needs: amtool and prometheus-alertmanager (apt-get install prometheus-alertmanager), Python 3
standard library only.
"""

import json
import os
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.environ.get("ALERTMANAGER_CONFIG") or os.path.join(HERE, "alertmanager.yml")
ALERTS = os.path.join(HERE, "..", "prometheus", "alerts.yml")
ALERTMANAGER = os.environ.get("ALERTMANAGER_BIN") or shutil.which(
    "prometheus-alertmanager"
) or shutil.which("alertmanager")

results = []


def check(name, ok, detail=""):
    results.append(ok)
    line = f"{'ok  ' if ok else 'FAIL'} {name}"
    if detail and not ok:
        line += f": {detail}"
    print(line, flush=True)


def run(args):
    p = subprocess.run(args, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


# --- 1. the file -----------------------------------------------------------------------------

def static_cases():
    if not shutil.which("amtool"):
        check("amtool is installed (apt-get install prometheus-alertmanager)", False, "not found")
        return
    rc, out = run(["amtool", "check-config", CONFIG])
    check("amtool check-config accepts alertmanager.yml", rc == 0, out.strip())

    text = open(CONFIG).read()
    # Keys that would hold a secret inline; their *_file forms are the ones allowed.
    inline = re.findall(
        r"^\s*-?\s*(smtp_auth_password|smtp_auth_secret|auth_password|auth_secret|api_url|"
        r"slack_api_url|url|bot_token|routing_key|service_key|api_key|credentials)\s*:",
        text,
        re.M,
    )
    check("no secret inline (SMTP password and webhook URL come from files)", not inline,
          f"inline keys: {inline}")
    check("secrets are read from mounted files",
          "smtp_auth_password_file:" in text and "slack_api_url_file:" in text)
    for f in ("smtp_password.example", "chat_webhook_url.example"):
        check(f"secrets/{f} exists (the shape of the mounted file)",
              os.path.isfile(os.path.join(HERE, "secrets", f)))

    # 2. routing
    cases = [
        ("critical ServiceDown for identity -> email and chat",
         "email,chat", ["severity=critical", "service=identity", "alertname=ServiceDown"]),
        ("critical High5xxRate for gateway -> email and chat",
         "email,chat", ["severity=critical", "service=gateway", "alertname=High5xxRate"]),
        ("critical ScheduleCritical for identity -> email and chat",
         "email,chat", ["severity=critical", "service=identity", "alertname=ScheduleCritical",
                        "schedule=identity.token-cleanup"]),
        ("warning HighHttpLatencyP99 for identity -> chat only",
         "chat", ["severity=warning", "service=identity", "alertname=HighHttpLatencyP99"]),
        ("warning QueueBackedUp for notifier -> chat only",
         "chat", ["severity=warning", "service=notifier", "alertname=QueueBackedUp",
                  "queue=notifier.email"]),
        ("an alert without severity -> chat (nothing is dropped)",
         "chat", ["service=crm", "alertname=SomethingNew"]),
        ("severity=info -> chat", "chat", ["severity=info", "alertname=Info"]),
    ]
    for name, receivers, labels in cases:
        rc, out = run(["amtool", "config", "routes", "test", f"--config.file={CONFIG}",
                       f"--verify.receivers={receivers}", *labels])
        check(f"route: {name}", rc == 0, out.strip().replace("\n", " | "))
    # The negative: a warning must not page.
    rc, out = run(["amtool", "config", "routes", "test", f"--config.file={CONFIG}",
                   "--verify.receivers=email,chat", "severity=warning", "service=identity",
                   "alertname=HighHttpLatencyP99"])
    check("route: a warning does not reach email", rc != 0, out.strip())


# --- 3. consistency with the alert rules ---------------------------------------------------

def consistency_cases():
    rules = open(ALERTS).read()
    names = set(re.findall(r"^\s*-\s*alert:\s*(\S+)", rules, re.M))
    config = open(CONFIG).read()
    used = set()
    for m in re.findall(r"alertname=~?\"([^\"]+)\"", config):
        used.update(m.split("|"))
    missing = sorted(used - names)
    check("every alertname in alertmanager.yml is a rule in alerts.yml", not missing,
          f"unknown: {missing}")
    block = re.search(r"-\s*alert:\s*ServiceDown\b(.*?)(?=\n\s*-\s*alert:|\Z)", rules, re.S)
    check("ServiceDown carries a service label (the inhibition matches on it)",
          bool(block and re.search(r"^\s+service:", block.group(1), re.M)))


# --- 4. live -------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chat(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Chat.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


class Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for Alertmanager: no AUTH advertised, no TLS; keeps each message."""

    received = []

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 localhost test SMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip().upper()
            if cmd.startswith(("EHLO", "HELO")):
                self.reply("250-localhost")
                self.reply("250 8BITMIME")
            elif cmd.startswith("DATA"):
                self.reply("354 end with <CRLF>.<CRLF>")
                data = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    data.append(l.decode(errors="replace"))
                Smtp.received.append("".join(data))
                self.reply("250 queued")
            elif cmd.startswith("QUIT"):
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


def test_config(tmp, chat_url, smtp_port):
    """The real file with its secrets and hosts pointed at the local catchers, and short waits."""
    text = open(CONFIG).read()
    url_file = os.path.join(tmp, "chat_webhook_url")
    with open(url_file, "w") as f:
        f.write(chat_url + "\n")
    subs = [
        (r"(smtp_smarthost:).*", rf"\1 127.0.0.1:{smtp_port}"),
        (r"(smtp_require_tls:).*", r"\1 false"),
        (r"(smtp_auth_password_file:).*",
         rf"\1 {os.path.join(HERE, 'secrets', 'smtp_password.example')}"),
        (r"(slack_api_url_file:).*", rf"\1 {url_file}"),
        (r"(group_wait:).*", r"\1 1s"),
        (r"(group_interval:).*", r"\1 1s"),
    ]
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text, count=1)
        if n != 1:
            raise RuntimeError(f"alertmanager.yml has no {pattern!r} to point at the test setup")
    path = os.path.join(tmp, "alertmanager.yml")
    with open(path, "w") as f:
        f.write(text)
    return path


def api(base, path, body=None):
    req = urllib.request.Request(base + path, method="POST" if body is not None else "GET")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, data, timeout=5) as r:
        raw = r.read()
        return json.loads(raw) if raw.strip() else None


def alert(**labels):
    return {"labels": labels, "annotations": {"summary": f"test {labels['alertname']}"}}


def live_cases():
    if not ALERTMANAGER:
        check("prometheus-alertmanager is installed (apt-get install prometheus-alertmanager)",
              False, "not found")
        return
    tmp = tempfile.mkdtemp(prefix="mas-am-test-")
    chat = HTTPServer(("127.0.0.1", 0), Chat)
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp)
    smtp.daemon_threads = True
    for server in (chat, smtp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = None
    log = open(os.path.join(tmp, "alertmanager.log"), "w")
    try:
        cfg = test_config(tmp, f"http://127.0.0.1:{chat.server_address[1]}/hook",
                          smtp.server_address[1])
        proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={cfg}", f"--storage.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=info"],
            stdout=log, stderr=subprocess.STDOUT)
        ready = False
        for _ in range(100):
            if proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=1)
                ready = True
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        check("a live Alertmanager starts on the configuration", ready,
              open(log.name).read()[-600:])
        if not ready:
            return

        api(base, "/api/v2/alerts", [
            alert(alertname="ServiceDown", severity="critical", service="identity",
                  job="mas-identity", instance="10.0.0.7:9090"),
            alert(alertname="HighHttpLatencyP99", severity="warning", service="identity"),
            alert(alertname="High5xxRate", severity="critical", service="identity"),
            alert(alertname="HighGrpcLatencyP99", severity="warning", service="identity"),
            alert(alertname="HighHttpLatencyP99", severity="warning", service="gateway"),
            alert(alertname="ScheduleCritical", severity="critical", service="identity",
                  schedule="identity.token-cleanup"),
            alert(alertname="TokenCleanupFailing", severity="warning"),
            alert(alertname="QueueBackedUp", severity="warning", service="notifier",
                  queue="notifier.email"),
        ])
        state = {}
        for a in api(base, "/api/v2/alerts"):
            l = a["labels"]
            state[(l["alertname"], l.get("service", ""))] = a["status"]
        def inhibited(name, service):
            s = state.get((name, service))
            return bool(s and s["inhibitedBy"])
        for name in ("HighHttpLatencyP99", "HighGrpcLatencyP99", "High5xxRate"):
            check(f"inhibit: ServiceDown(identity) mutes {name}(identity)",
                  inhibited(name, "identity"), str(state.get((name, "identity"))))
        check("inhibit: ServiceDown(identity) leaves HighHttpLatencyP99(gateway) alone",
              ("HighHttpLatencyP99", "gateway") in state
              and not inhibited("HighHttpLatencyP99", "gateway"))
        check("inhibit: ServiceDown itself is not muted", ("ServiceDown", "identity") in state
              and not inhibited("ServiceDown", "identity"))
        check("inhibit: ScheduleCritical(token cleanup) mutes TokenCleanupFailing",
              inhibited("TokenCleanupFailing", ""))

        # Deliveries: wait until the expected notifications have arrived (group_wait 1s).
        def chat_names():
            return {(a["title"]) for m in Chat.received for a in m.get("attachments", [])}
        expect_chat = ["ServiceDown (identity)", "HighHttpLatencyP99 (gateway)",
                       "QueueBackedUp (notifier)", "ScheduleCritical (identity)"]
        expect_mail = ["ServiceDown", "ScheduleCritical"]
        deadline = time.time() + 20
        while time.time() < deadline:
            titles = " ".join(chat_names())
            mails = "\n".join(Smtp.received)
            if all(e in titles for e in expect_chat) and all(e in mails for e in expect_mail):
                break
            time.sleep(0.25)
        time.sleep(1.5)  # a wrongly routed or muted alert would arrive in the same flush
        titles = " ".join(chat_names())
        mails = "\n".join(Smtp.received)
        for e in expect_chat:
            check(f"delivered: chat got {e}", e in titles, titles)
        for e in expect_mail:
            check(f"delivered: email got {e} (critical)", e in mails,
                  f"{len(Smtp.received)} mails")
        for e in ("HighHttpLatencyP99", "QueueBackedUp"):
            check(f"delivered: email did not get the warning {e}", e not in mails)
        for e in ("HighHttpLatencyP99 (identity)", "High5xxRate", "HighGrpcLatencyP99",
                  "TokenCleanupFailing"):
            check(f"delivered: the muted {e} reached nobody", e not in titles and e not in mails,
                  titles)
    except Exception as e:  # the harness itself failed: one failed case with the reason
        check("live Alertmanager test ran", False, repr(e))
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        chat.shutdown()
        smtp.shutdown()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    static_cases()
    consistency_cases()
    if "--static-only" not in sys.argv:
        live_cases()
    passed = sum(results)
    failed = len(results) - passed
    print(f"alertmanager: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
