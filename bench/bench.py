#!/usr/bin/env python3
"""Load benchmark: Portcullis against reference proxies, on loopback.

Run through scripts/bench (which installs nginx, wrk, caddy and haproxy when
missing). Everything runs on 127.0.0.1 with free ports in a scratch directory;
every process started here is stopped by its PID at the end.

Layout (DESIGN §10, PERF-CALIBRATION.md):
  core PROXY_CPU (0): the proxy under test, alone
  core LOAD_CPU  (1): wrk and the upstream nginx (a small static response)

Targets, each driven by `wrk -t1 -c64 -dDURATION --latency`:
  direct            wrk -> upstream (no proxy; the ceiling)
  nginx             nginx proxy_pass, keepalive pool (the reference: ratio 1.00)
  nginx+cookie      nginx proxy_pass carrying the same ~1 KB session cookie
  caddy             caddy reverse_proxy (optional)
  haproxy           haproxy, http-reuse always (optional)
  portcullis-public Portcullis, a route with access = "public"
  portcullis-auth   Portcullis, an authenticated route with a valid DS cookie
                    (verified once, then served from the claims cache)

Each round visits every target once; the table shows the best round per
target and the ratio of its req/s to nginx's best. Before loading, each target
is checked (status 200; for Portcullis also: no cookie -> 401, identity header
reaches the upstream), and a target whose wrk run saw non-2xx/3xx responses or
socket errors is flagged: a fast 401 is not a result.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PROXY_CPU = os.environ.get("PROXY_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
DURATION = os.environ.get("DURATION", "5s")
WARMUP = os.environ.get("WARMUP", "1s")
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
ONLY = [t for t in os.environ.get("TARGETS", "").split(",") if t]
PROJECT_ID = "P2benchBenchBenchBenchBench0"
CONTROL_TOKEN = "bench-control-token"
SECRET = "bench-session-secret-0123456789abcdef0123456789"
BODY = "portcullis bench upstream: 47 bytes of body.\n"
# The identity header the default "portcullis" preset injects for the user id.
USER_HEADER = os.environ.get("BENCH_USER_HEADER", "X-Auth-User-Id")


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template: str, **values: object) -> str:
    text = (HERE / template).read_text()
    for k, v in values.items():
        text = text.replace("@" + k + "@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SystemExit(f"bench: {template}: unfilled placeholders {left}")
    return text


# === processes ===============================================================


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


class Procs:
    """Every process this run started; stopped by PID (and its own group) at exit."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], cpu: str, workdir: Path, env=None) -> Proc:
        log_path = workdir / f"{name}.log"
        out = open(log_path, "wb")
        full = ["taskset", "-c", cpu, *argv]
        p = subprocess.Popen(
            full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        proc = Proc(name, p, log_path)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 5
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait()


def tree_pids(root: int) -> list[int]:
    """root and all its descendants (nginx master + workers)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_kib(root: int) -> int:
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_ticks(root: int) -> int:
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total


def http_get(url: str, headers=None, timeout=2.0) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_http(url: str, proc: Proc, what: str, timeout=20.0, headers=None) -> None:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(
                f"bench: {what} exited with {proc.popen.returncode}; log:\n"
                + proc.log_path.read_text(errors="replace")[-3000:]
            )
        try:
            status, _, _ = http_get(url, headers=headers, timeout=1)
            if status < 500:
                return
            last = f"HTTP {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise SystemExit(
        f"bench: {what} not answering at {url} ({last}); log:\n"
        + proc.log_path.read_text(errors="replace")[-3000:]
    )


# === wrk =====================================================================


@dataclass
class Result:
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    bad: int = 0  # non-2xx/3xx responses + socket errors
    requests: int = 0
    cpu_us_per_req: float = 0.0
    raw: str = ""


def to_ms(v: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        return float("nan")
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[unit]


def run_wrk(url: str, duration: str, headers: list[str], measure_pid: int | None) -> Result:
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}", "--latency"]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    t0 = cpu_ticks(measure_pid) if measure_pid else 0
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    t1 = cpu_ticks(measure_pid) if measure_pid else 0
    text = out.stdout + out.stderr
    r = Result(raw=text)
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        r.rps = float(m.group(1))
    if m := re.search(r"^\s*50%\s+(\S+)", text, re.M):
        r.p50_ms = to_ms(m.group(1))
    if m := re.search(r"^\s*99%\s+(\S+)", text, re.M):
        r.p99_ms = to_ms(m.group(1))
    if m := re.search(r"(\d+) requests in", text):
        r.requests = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        r.bad += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        r.bad += sum(int(x) for x in m.groups())
    if out.returncode != 0 or r.rps == 0:
        r.bad = max(r.bad, 1)
    if measure_pid and r.requests:
        hz = os.sysconf("SC_CLK_TCK")
        r.cpu_us_per_req = (t1 - t0) / hz * 1e6 / r.requests
    return r


# === targets =================================================================


@dataclass
class Target:
    name: str
    url: str
    pid: int | None
    headers: list[str] = field(default_factory=list)
    note: str = ""
    results: list[Result] = field(default_factory=list)

    def best(self) -> Result | None:
        good = [r for r in self.results if r.rps > 0]
        return max(good, key=lambda r: r.rps) if good else None


def mint_session(emu_base: str) -> str:
    """A session token from the emulator's control API (signed with its current key)."""
    body = json.dumps(
        {
            "sub": "U2benchuser",
            "ttl_secs": 3600,
            "claims": {
                "email": "bench@example.test",
                "name": "Bench User",
                "roles": ["user"],
                "permissions": ["read"],
                "tenants": {"T2bench": {"roles": ["member"], "permissions": []}},
                # Pad to a realistic Descope session size (~900 bytes).
                "bench_padding": "x" * 300,
            },
        }
    ).encode()
    paths = os.environ.get("BENCH_MINT_PATHS", "/emulator/mint,/emulator/tokens,/emulator/token").split(",")
    errors = []
    for path in paths:
        req = urllib.request.Request(
            emu_base + path,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {CONTROL_TOKEN}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                data = r.read().decode()
        except urllib.error.HTTPError as e:
            errors.append(f"{path}: HTTP {e.code} {e.read()[:200]!r}")
            continue
        except OSError as e:
            errors.append(f"{path}: {e}")
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            tok = data.strip()
        else:
            tok = next(
                (obj[k] for k in ("sessionJwt", "session_jwt", "token", "jwt", "sessionToken") if isinstance(obj, dict) and k in obj),
                obj if isinstance(obj, str) else "",
            )
        if tok.count(".") == 2:
            return tok
        errors.append(f"{path}: no token in {data[:200]!r}")
    raise SystemExit("bench: could not mint a session token from the emulator:\n  " + "\n  ".join(errors))


def main() -> int:
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} not found (scripts/bench installs it)")
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        log("only one CPU: proxy and load share it, numbers are not comparable to DESIGN §10")

    gateway = os.environ.get("PORTCULLIS_BIN") or ""
    keep = os.environ.get("KEEP_SCRATCH") == "1"
    scratch = Path(tempfile.mkdtemp(prefix="portcullis-bench."))
    procs = Procs()
    targets: list[Target] = []
    try:
        for sub in ("tmp", "logs", "caddy"):
            (scratch / sub).mkdir()

        # --- upstream: nginx, static 200 --------------------------------------
        up_port = free_port()
        (scratch / "upstream.conf").write_text(
            render(
                "nginx-upstream.conf",
                PORT=up_port,
                DIR=scratch,
                BODY=BODY.rstrip("\n"),
                USER_HEADER_VAR=USER_HEADER.lower().replace("-", "_"),
            )
        )
        up = procs.start(
            "upstream",
            ["nginx", "-p", str(scratch), "-e", str(scratch / "logs/upstream.err"), "-c", str(scratch / "upstream.conf")],
            LOAD_CPU,
            scratch,
        )
        wait_http(f"http://127.0.0.1:{up_port}/app/x", up, "upstream nginx")
        targets.append(Target("direct", f"http://127.0.0.1:{up_port}/app/x", None, note="no proxy"))

        # --- nginx proxy_pass (reference) -------------------------------------
        ngx_port = free_port()
        (scratch / "proxy.conf").write_text(render("nginx-proxy.conf", PORT=ngx_port, UPSTREAM_PORT=up_port, DIR=scratch))
        ngx = procs.start(
            "nginx-proxy",
            ["nginx", "-p", str(scratch), "-e", str(scratch / "logs/proxy.err"), "-c", str(scratch / "proxy.conf")],
            PROXY_CPU,
            scratch,
        )
        wait_http(f"http://127.0.0.1:{ngx_port}/app/x", ngx, "nginx proxy")
        targets.append(Target("nginx", f"http://127.0.0.1:{ngx_port}/app/x", ngx.pid, note="reference"))

        # --- caddy / haproxy (optional) ---------------------------------------
        if shutil.which("caddy") and os.environ.get("SKIP_CADDY") != "1":
            caddy_port = free_port()
            (scratch / "Caddyfile").write_text(render("Caddyfile", PORT=caddy_port, UPSTREAM_PORT=up_port, DIR=scratch))
            cenv = {
                "HOME": str(scratch / "caddy"),
                "XDG_DATA_HOME": str(scratch / "caddy"),
                "XDG_CONFIG_HOME": str(scratch / "caddy"),
            }
            caddy = procs.start(
                "caddy",
                ["caddy", "run", "--config", str(scratch / "Caddyfile"), "--adapter", "caddyfile"],
                PROXY_CPU,
                scratch,
                env=cenv,
            )
            wait_http(f"http://127.0.0.1:{caddy_port}/app/x", caddy, "caddy")
            targets.append(Target("caddy", f"http://127.0.0.1:{caddy_port}/app/x", caddy.pid))
        else:
            log("caddy not installed (or SKIP_CADDY=1): skipped")
        if shutil.which("haproxy") and os.environ.get("SKIP_HAPROXY") != "1":
            hap_port = free_port()
            (scratch / "haproxy.cfg").write_text(render("haproxy.cfg", PORT=hap_port, UPSTREAM_PORT=up_port))
            hap = procs.start("haproxy", ["haproxy", "-db", "-f", str(scratch / "haproxy.cfg")], PROXY_CPU, scratch)
            wait_http(f"http://127.0.0.1:{hap_port}/app/x", hap, "haproxy")
            targets.append(Target("haproxy", f"http://127.0.0.1:{hap_port}/app/x", hap.pid))
        else:
            log("haproxy not installed (or SKIP_HAPROXY=1): skipped")

        # --- Portcullis + emulator --------------------------------------------
        token = None
        if gateway:
            emu = procs.start(
                "emulator",
                [gateway, "emulator", "--listen", "127.0.0.1:0", "--project-id", PROJECT_ID, "--control-token", CONTROL_TOKEN],
                LOAD_CPU,
                scratch,
            )
            emu_base = None
            deadline = time.time() + 20
            while time.time() < deadline and emu_base is None:
                if emu.popen.poll() is not None:
                    raise SystemExit("bench: emulator exited:\n" + emu.log_path.read_text(errors="replace")[-3000:])
                m = re.search(r"Descope emulator listening on (http://[\w.:\[\]-]+)", emu.log_path.read_text(errors="replace"))
                if m:
                    emu_base = m.group(1)
                else:
                    time.sleep(0.1)
            if emu_base is None:
                raise SystemExit("bench: emulator did not print its address:\n" + emu.log_path.read_text(errors="replace")[-3000:])
            token = mint_session(emu_base)
            log(f"emulator at {emu_base}; minted a {len(token)}-byte session token")

            gw_port, admin_port = free_port(), free_port()
            (scratch / "portcullis.toml").write_text(
                render(
                    "portcullis.toml",
                    PORT=gw_port,
                    ADMIN_PORT=admin_port,
                    UPSTREAM_PORT=up_port,
                    EMULATOR=emu_base,
                    PROJECT_ID=PROJECT_ID,
                )
            )
            genv = {"PORTCULLIS_SECRET": SECRET, "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn")}
            for k in ("DESCOPE_BASE_URI", "DESCOPE_PROJECT_ID", "DESCOPE_AUTH_MANAGEMENT_KEY", "PORTCULLIS_CONFIG"):
                os.environ.pop(k, None)
            gw = procs.start("portcullis", [gateway, "run", "-c", str(scratch / "portcullis.toml")], PROXY_CPU, scratch, env=genv)
            wait_http(f"http://127.0.0.1:{admin_port}/readyz", gw, "portcullis /readyz")
            # readiness may lag the listener a little (keys loading)
            deadline = time.time() + 10
            while http_get(f"http://127.0.0.1:{admin_port}/readyz")[0] != 200:
                if time.time() > deadline:
                    raise SystemExit("bench: portcullis never became ready:\n" + gw.log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.1)
            cookie = f"Cookie: theme=dark; DS={token}; lang=en"
            targets.append(Target("portcullis-public", f"http://127.0.0.1:{gw_port}/public/x", gw.pid, note="access = public"))
            targets.append(
                Target("portcullis-auth", f"http://127.0.0.1:{gw_port}/app/x", gw.pid, headers=[cookie], note="DS cookie, cached claims")
            )
            # Same cookie through nginx: the fair reference for the auth row.
            targets.insert(
                2, Target("nginx+cookie", f"http://127.0.0.1:{ngx_port}/app/x", ngx.pid, headers=[cookie], note="same cookie")
            )
            check_portcullis(gw_port, up_port, cookie, gw)
        else:
            log("PORTCULLIS_BIN not set: Portcullis rows skipped (reference proxies only)")

        if ONLY:
            targets = [t for t in targets if t.name in ONLY or t.name == "nginx"]

        # --- sanity: every target answers 200 with the upstream body ----------
        for t in targets:
            hdrs = dict(h.split(": ", 1) for h in t.headers)
            status, _, body = http_get(t.url, headers=hdrs)
            if status != 200 or body.decode(errors="replace") != BODY:
                raise SystemExit(f"bench: {t.name}: expected 200 + upstream body from {t.url}, got {status} {body[:200]!r}")

        # --- load -------------------------------------------------------------
        log(
            f"{len(targets)} targets x {ROUNDS} rounds x {DURATION} (+{WARMUP} warm-up), "
            f"{CONNECTIONS} connections; proxy on CPU {PROXY_CPU}, wrk + upstream on CPU {LOAD_CPU}"
        )
        for rnd in range(1, ROUNDS + 1):
            for t in targets:
                if rnd == 1 and WARMUP not in ("", "0", "0s"):
                    run_wrk(t.url, WARMUP, t.headers, None)
                r = run_wrk(t.url, DURATION, t.headers, t.pid)
                t.results.append(r)
                flag = f"  ({r.bad} bad responses/errors)" if r.bad else ""
                log(f"round {rnd} {t.name:18} {r.rps:>10,.0f} req/s  p99 {r.p99_ms:.2f} ms{flag}")

        report(targets)
        return 0 if all(not r.bad for t in targets for r in t.results) else 1
    finally:
        procs.stop_all()
        if keep:
            log(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def check_portcullis(gw_port: int, up_port: int, cookie: str, gw: Proc) -> None:
    """The auth row must measure real auth: refuse without a cookie, forward identity with it."""
    base = f"http://127.0.0.1:{gw_port}"
    status, _, _ = http_get(base + "/app/x", headers={"Accept": "application/json"})
    if status != 401:
        raise SystemExit(f"bench: portcullis: /app/x without a session should be 401, got {status}")
    status, _, _ = http_get(base + "/app/x", headers={"Cookie": "DS=not.a.token", "Accept": "application/json"})
    if status != 401:
        raise SystemExit(f"bench: portcullis: /app/x with a bogus session should be 401, got {status}")
    hdr = cookie.split(": ", 1)
    status, _, body = http_get(base + "/app/echo", headers={hdr[0]: hdr[1], USER_HEADER: "spoofed"})
    text = body.decode(errors="replace")
    if status != 200 or "user=U2benchuser" not in text:
        raise SystemExit(
            f"bench: portcullis: the upstream should see {USER_HEADER}: U2benchuser, got {status} {text[:200]!r}\n"
            + gw.log_path.read_text(errors="replace")[-2000:]
        )
    status, _, body = http_get(base + "/public/echo", headers={USER_HEADER: "spoofed"})
    if status != 200 or "spoofed" in body.decode(errors="replace"):
        raise SystemExit(f"bench: portcullis: a spoofed {USER_HEADER} reached the upstream on a public route ({status} {body[:200]!r})")


def report(targets: list[Target]) -> None:
    ref = next((t.best() for t in targets if t.name == "nginx"), None)
    ref_cookie = next((t.best() for t in targets if t.name == "nginx+cookie"), None)
    rows = []
    for t in targets:
        b = t.best()
        rss = rss_kib(t.pid) / 1024 if t.pid else None
        if b is None:
            rows.append([t.name, "failed", "", "", "", "", "", t.note])
            continue
        ratio = f"{b.rps / ref.rps:.2f}" if ref else "-"
        if t.name == "portcullis-auth" and ref_cookie:
            ratio += f" ({b.rps / ref_cookie.rps:.2f} vs +cookie)"
        bad = sum(r.bad for r in t.results)
        rows.append(
            [
                t.name,
                f"{b.rps:,.0f}",
                f"{b.p50_ms:.2f}",
                f"{b.p99_ms:.2f}",
                f"{rss:.1f}" if rss is not None else "-",
                f"{b.cpu_us_per_req:.1f}" if t.pid else "-",
                ratio,
                t.note + (f" !{bad} errors" if bad else ""),
            ]
        )
    head = ["target", "req/s", "p50 ms", "p99 ms", "RSS MiB", "CPU us/req", "x nginx", "note"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |"
    print()
    print(
        f"Best of {ROUNDS} round(s), {DURATION} each, wrk -t1 -c{CONNECTIONS}; proxy pinned to CPU {PROXY_CPU}, "
        f"wrk + upstream on CPU {LOAD_CPU}; RSS after load; x nginx = req/s / nginx proxy_pass req/s, same run."
    )
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).rjust(w) if i in (1, 2, 3, 4, 5) else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |")
    print()
    print("DESIGN §10 targets: portcullis-auth >= ~0.75x nginx (median), ~0.9x nginx+cookie; caddy ~0.25x.")
    print("This machine is noisy (+-15-25% between rounds); compare ratios from the same run only.")


if __name__ == "__main__":
    sys.exit(main())
