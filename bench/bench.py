#!/usr/bin/env python3
"""Load benchmark: Portcullis against reference proxies, on loopback.

Run through scripts/bench (which installs nginx, wrk, caddy and haproxy when
missing). Everything runs on 127.0.0.1 with free ports in a scratch directory;
every process started here is stopped by its PID at the end.

Layout:
  core PROXY_CPU (0): the proxy under test, alone
  core LOAD_CPU  (1): wrk and the upstream nginx (a small static response)

Targets, each driven by `wrk -t1 -c64 -dDURATION --latency`:
  direct            wrk -> upstream (no proxy; the ceiling)
  nginx             nginx proxy_pass, keepalive pool, access log on (buffered)
  nginx+cookie      nginx proxy_pass carrying the same ~1 KB session cookie
  nginx-nolog(+cookie)  the same with access_log off
  caddy             caddy reverse_proxy (optional)
  haproxy           haproxy, http-reuse always (optional)
  portcullis-public Portcullis, a route with access = "public"
  portcullis-auth   Portcullis, an authenticated route with a valid DS cookie
                    (verified once, then served from the claims cache)
  hyper-floor(+cookie)  a proxy that only proxies, on the gateway's own stack
                    (hyper server + request-driven client connections,
                    current-thread tokio, mimalloc; crates/bench-floor):
                    what hyper allows here

Portcullis runs in its default configuration (access log on, JSON to a
file as in a container) beside nginx with its access log on (buffered); the
"-nolog" rows repeat both with their logs off. Extra rows: a new RS256 and a
new ES256 token on every request (the cold path: one signature check each),
10,000 idle keep-alive connections (RSS), and a refresh storm (STORM
concurrent requests on one expired session: one Descope call).

Each round visits every target once; the table shows the median round per
target and the ratio of its req/s to its nginx counterpart's median. Before loading, each target
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
ROUNDS = int(os.environ.get("ROUNDS", "3"))
ONLY = [t for t in os.environ.get("TARGETS", "").split(",") if t]
# PERF=portcullis-auth,portcullis-public: perf-record those targets in the last round.
PERF = [t for t in os.environ.get("PERF", "").split(",") if t]
# PERF_CALLGRAPH=dwarf: DWARF call graphs (the release build has no frame pointers) and a
# report of the gateway functions' inclusive time; default fp.
PERF_CALLGRAPH = os.environ.get("PERF_CALLGRAPH", "fp")
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


def run_wrk(url: str, duration: str, headers: list[str], measure_pid: int | None, script: str | None = None) -> Result:
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}", "--latency"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
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
        """The median round by req/s (the upper median with an even count)."""
        good = sorted((r for r in self.results if r.rps > 0), key=lambda r: r.rps)
        return good[len(good) // 2] if good else None


def mint_session(emu_base: str) -> str:
    """A session token from the emulator's control API (signed with its current key)."""
    body = json.dumps(
        {
            "sub": "U2benchuser",
            "ttlSecs": 3600,
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
    paths = os.environ.get("BENCH_MINT_PATHS", "/emulator/mint").split(",")
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


WORKERS = len([c for c in PROXY_CPU.split(",") if c]) if "-" not in PROXY_CPU else 2
COLD_RS256 = int(os.environ.get("COLD_RS256", "10000"))
COLD_ES256 = int(os.environ.get("COLD_ES256", "20000"))
COLD_ES384 = int(os.environ.get("COLD_ES384", "20000"))
COLD_N = {"rs256": COLD_RS256, "es256": COLD_ES256, "es384": COLD_ES384}
IDLE = int(os.environ.get("IDLE_CONNECTIONS", "10000"))
STORM = int(os.environ.get("STORM", "128"))


def start_emulator(procs: Procs, gateway: str, scratch: Path, name: str, key_type: str) -> str:
    emu = procs.start(
        name,
        [gateway, "emulator", "--listen", "127.0.0.1:0", "--project-id", PROJECT_ID, "--control-token", CONTROL_TOKEN,
         "--key-type", key_type],
        LOAD_CPU,
        scratch,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        if emu.popen.poll() is not None:
            raise SystemExit("bench: emulator exited:\n" + emu.log_path.read_text(errors="replace")[-3000:])
        m = re.search(r"Descope emulator listening on (http://[\w.:\[\]-]+)", emu.log_path.read_text(errors="replace"))
        if m:
            return m.group(1)
        time.sleep(0.1)
    raise SystemExit("bench: emulator did not print its address:\n" + emu.log_path.read_text(errors="replace")[-3000:])


def control(emu_base: str, method: str, path: str, body: dict | None = None, timeout: float = 120) -> dict:
    req = urllib.request.Request(
        emu_base + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {CONTROL_TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = r.read()
    return json.loads(data) if data else {}


BENCH_CLAIMS = {
    "email": "bench@example.test",
    "name": "Bench User",
    "roles": ["user"],
    "permissions": ["read"],
    "tenants": {"T2bench": {"roles": ["member"], "permissions": []}},
    # Pad to a realistic Descope session size (~900 bytes).
    "bench_padding": "x" * 300,
}


def start_gateway(procs: Procs, gateway: str, scratch: Path, name: str, emu_base: str, up_port: int, rust_log: str | None) -> tuple[Proc, int, int]:
    gw_port, admin_port = free_port(), free_port()
    conf = scratch / f"{name}.toml"
    conf.write_text(
        render("portcullis.toml", PORT=gw_port, ADMIN_PORT=admin_port, UPSTREAM_PORT=up_port, EMULATOR=emu_base, PROJECT_ID=PROJECT_ID)
    )
    genv = {"PORTCULLIS_SECRET": SECRET}
    os.environ.pop("RUST_LOG", None)
    if rust_log:
        genv["RUST_LOG"] = rust_log
    gw = procs.start(name, [gateway, "run", "-c", str(conf)], PROXY_CPU, scratch, env=genv)
    wait_http(f"http://127.0.0.1:{admin_port}/readyz", gw, f"{name} /readyz")
    deadline = time.time() + 10
    while http_get(f"http://127.0.0.1:{admin_port}/readyz")[0] != 200:
        if time.time() > deadline:
            raise SystemExit(f"bench: {name} never became ready:\n" + gw.log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.1)
    return gw, gw_port, admin_port


def start_nginx_proxy(procs: Procs, scratch: Path, name: str, up_port: int, access_log: str) -> tuple[Proc, int]:
    port = free_port()
    conf = scratch / f"{name}.conf"
    conf.write_text(render("nginx-proxy.conf", PORT=port, UPSTREAM_PORT=up_port, DIR=scratch, WORKERS=WORKERS, ACCESS_LOG=access_log))
    proc = procs.start(name, ["nginx", "-p", str(scratch), "-e", str(scratch / f"logs/{name}.err"), "-c", str(conf)], PROXY_CPU, scratch)
    wait_http(f"http://127.0.0.1:{port}/app/x", proc, name)
    return proc, port


def main() -> int:
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} not found (scripts/bench installs it)")
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        log("only one CPU: proxy and load share it, numbers are not comparable")
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass

    gateway = os.environ.get("PORTCULLIS_BIN") or ""
    keep = os.environ.get("KEEP_SCRATCH") == "1"
    scratch = Path(tempfile.mkdtemp(prefix="portcullis-bench."))
    procs = Procs()
    targets: list[Target] = []
    extra_rows: list[list[str]] = []
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

        # --- nginx proxy_pass: the reference, as deployed (log on) and log off -
        ngx, ngx_port = start_nginx_proxy(
            procs, scratch, "nginx", up_port, f"{scratch}/logs/nginx-access.log combined buffer=64k flush=1s"
        )
        targets.append(Target("nginx", f"http://127.0.0.1:{ngx_port}/app/x", ngx.pid, note="reference; access log on (buffered)"))
        ngx_off, ngx_off_port = start_nginx_proxy(procs, scratch, "nginx-nolog", up_port, "off")

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

        # --- the hyper floor: the gateway's stack with nothing but proxying ---
        floor = os.environ.get("FLOOR_BIN") or ""
        floor_port = 0
        floor_proc = None
        if floor:
            floor_port = free_port()
            floor_proc = procs.start(
                "hyper-floor", [floor, f"127.0.0.1:{floor_port}", f"127.0.0.1:{up_port}"], PROXY_CPU, scratch
            )
            wait_http(f"http://127.0.0.1:{floor_port}/app/x", floor_proc, "hyper-floor")
        else:
            log("FLOOR_BIN not set: hyper-floor rows skipped")

        # --- Portcullis: default configuration (access log on, to a file) ----
        token = None
        cold: list[tuple[str, Target]] = []
        if gateway:
            emu_base = start_emulator(procs, gateway, scratch, "emulator", "rsa")
            token = mint_session(emu_base)
            log(f"emulator at {emu_base}; minted a {len(token)}-byte session token")
            for k in ("DESCOPE_BASE_URI", "DESCOPE_PROJECT_ID", "DESCOPE_AUTH_MANAGEMENT_KEY", "PORTCULLIS_CONFIG"):
                os.environ.pop(k, None)
            # Default: no RUST_LOG (info, access log on); logs go to a file, as in a container.
            gw, gw_port, gw_admin = start_gateway(procs, gateway, scratch, "portcullis", emu_base, up_port, None)
            gw_off, gw_off_port, _ = start_gateway(
                procs, gateway, scratch, "portcullis-nolog", emu_base, up_port, "warn,portcullis::access=off"
            )
            if os.environ.get("BENCH_AUTH", "cookie") == "bearer":
                cookie = f"Authorization: Bearer {token}"
            else:
                cookie = f"Cookie: theme=dark; DS={token}; lang=en"
            how = "bearer" if cookie.startswith("Authorization") else "DS cookie"
            targets += [
                Target("nginx+cookie", f"http://127.0.0.1:{ngx_port}/app/x", ngx.pid, headers=[cookie], note="same header; log on"),
                Target("portcullis-public", f"http://127.0.0.1:{gw_port}/public/x", gw.pid, note="access = public; default config (log on)"),
                Target("portcullis-auth", f"http://127.0.0.1:{gw_port}/app/x", gw.pid, headers=[cookie], note=f"{how}, cached claims; default config (log on)"),
                Target("nginx-nolog", f"http://127.0.0.1:{ngx_off_port}/app/x", ngx_off.pid, note="access_log off"),
                Target("nginx-nolog+cookie", f"http://127.0.0.1:{ngx_off_port}/app/x", ngx_off.pid, headers=[cookie], note="access_log off"),
                Target("portcullis-public-nolog", f"http://127.0.0.1:{gw_off_port}/public/x", gw_off.pid, note="access log off"),
                Target("portcullis-auth-nolog", f"http://127.0.0.1:{gw_off_port}/app/x", gw_off.pid, headers=[cookie], note="access log off"),
            ]
            if floor_proc is not None:
                targets += [
                    Target("hyper-floor", f"http://127.0.0.1:{floor_port}/public/x", floor_proc.pid, note="proxying only, no log (crates/bench-floor)"),
                    Target("hyper-floor+cookie", f"http://127.0.0.1:{floor_port}/app/x", floor_proc.pid, headers=[cookie], note="proxying only, same header, no auth work"),
                ]
            check_portcullis(gw_port, up_port, cookie, gw)

            # Cold path: a new token on every request (RS256 on the main
            # emulator; ES256 and ES384 each on an emulator + gateway of their own).
            if COLD_RS256 and (not ONLY or "portcullis-cold-rs256" in ONLY):
                cold.append(("portcullis-cold-rs256", cold_target("portcullis-cold-rs256", emu_base, gw_port, gw.pid, COLD_RS256, scratch)))
            for alg, key_type in (("es256", "ec256"), ("es384", "ec")):
                name = f"portcullis-cold-{alg}"
                if COLD_N[alg] and (not ONLY or name in ONLY):
                    ec_base = start_emulator(procs, gateway, scratch, f"emulator-{alg}", key_type)
                    gw_ec, gw_ec_port, _ = start_gateway(procs, gateway, scratch, f"portcullis-{alg}", ec_base, up_port, None)
                    cold.append((name, cold_target(name, ec_base, gw_ec_port, gw_ec.pid, COLD_N[alg], scratch)))
        else:
            log("PORTCULLIS_BIN not set: Portcullis rows skipped (reference proxies only)")

        if ONLY:
            targets = [t for t in targets if t.name in ONLY or t.name in ("nginx", "nginx-nolog")]

        # --- sanity: every target answers 200 with the upstream body ----------
        for t in targets:
            hdrs = dict(h.split(": ", 1) for h in t.headers)
            status, _, body = http_get(t.url, headers=hdrs)
            if status != 200 or body.decode(errors="replace") != BODY:
                raise SystemExit(f"bench: {t.name}: expected 200 + upstream body from {t.url}, got {status} {body[:200]!r}")

        # --- load: alternating rounds, medians ---------------------------------
        log(
            f"{len(targets)} targets x {ROUNDS} rounds x {DURATION} (+{WARMUP} warm-up), "
            f"{CONNECTIONS} connections; proxy on CPU {PROXY_CPU}, wrk + upstream on CPU {LOAD_CPU}"
        )
        for rnd in range(1, ROUNDS + 1):
            for t in targets:
                if rnd == 1 and WARMUP not in ("", "0", "0s"):
                    run_wrk(t.url, WARMUP, t.headers, None)
                perf = None
                if PERF and t.pid and t.name in PERF and rnd == ROUNDS:
                    perf = start_perf(t, scratch)
                r = run_wrk(t.url, DURATION, t.headers, t.pid)
                if perf is not None:
                    perf.wait()
                t.results.append(r)
                flag = f"  ({r.bad} bad responses/errors)" if r.bad else ""
                log(f"round {rnd} {t.name:24} {r.rps:>10,.0f} req/s  p99 {r.p99_ms:.2f} ms  {r.cpu_us_per_req:.1f} us/req{flag}")

        # --- cold path (one pass: each token is new exactly once) -------------
        for name, t in cold:
            # wrk runs its full duration even after the script stops at the
            # last token, so its req/s is meaningless here: the row's req/s is
            # the one-core capacity, 1e6 / CPU us per request.
            n = COLD_N[name.rsplit("-", 1)[-1]]
            r = run_wrk(t.url, f"{max(3, n // 1500)}s", t.headers, t.pid, script=t.note)
            if r.cpu_us_per_req:
                r.rps = 1e6 / r.cpu_us_per_req
            t.results.append(r)
            t.note = (
                f"{name.split('-')[-1].upper()}: a new token per request ({r.requests:,} requests); "
                "req/s = 1e6 / CPU us"
            )
            log(f"cold {name:24} {r.rps:>10,.0f} req/s  {r.cpu_us_per_req:.1f} us/req")
            targets.append(t)

        # --- 10,000 idle keep-alive connections: RSS --------------------------
        if IDLE and gateway and (not ONLY or "idle" in ONLY):
            idle_targets = [("nginx", ngx_port, ngx.pid), ("portcullis", gw_port, gw.pid)]
            if floor_proc is not None:
                idle_targets.append(("hyper-floor", floor_port, floor_proc.pid))
            for name, port, pid in idle_targets:
                path = "/app/x" if name == "nginx" else "/public/x"
                extra_rows.append(idle_row(name, port, path, pid))

        # --- refresh storm ----------------------------------------------------
        if STORM and gateway and (not ONLY or "storm" in ONLY):
            extra_rows.append(refresh_storm(emu_base, gw_port))

        report(targets, extra_rows)
        for t in targets:
            data = scratch / f"perf-{t.name}.data"
            if data.exists():
                perf_report(t.name, data, t.results[-1].cpu_us_per_req)
        return 0 if all(not r.bad for t in targets for r in t.results) else 1
    finally:
        procs.stop_all()
        if keep:
            log(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def cold_target(name: str, emu_base: str, gw_port: int, pid: int, n: int, scratch: Path) -> Target:
    """A wrk Lua script sending each of `n` freshly minted tokens once, then stopping."""
    log(f"{name}: minting {n:,} tokens")
    t0 = time.time()
    tokens = control(emu_base, "POST", "/emulator/mint", {"sub": "U2benchuser", "ttlSecs": 3600, "claims": BENCH_CLAIMS, "count": n}, timeout=600)["tokens"]
    log(f"{name}: minted in {time.time() - t0:.1f} s")
    script = scratch / f"{name}.lua"
    lines = ["local tokens = {"] + [f'"{tok}",' for tok in tokens] + ["}"]
    lines.append(
        """
local i = 0
local done = 0
local n = #tokens
request = function()
  -- past the last token (at most CONNECTIONS requests in flight) repeat it
  if i < n then i = i + 1 end
  return wrk.format("GET", "/app/x", { ["Cookie"] = "theme=dark; DS=" .. tokens[i] .. "; lang=en" })
end
response = function(status, headers, body)
  done = done + 1
  if done >= n then wrk.thread:stop() end
end
"""
    )
    script.write_text("\n".join(lines))
    return Target(name, f"http://127.0.0.1:{gw_port}/app/x", pid, note=str(script))


def idle_row(name: str, port: int, path: str, pid: int) -> list[str]:
    """RSS of `pid`'s tree with IDLE keep-alive connections open, each after one request."""
    before = rss_kib(pid)
    socks = []
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        for _ in range(IDLE):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(req)
            got = b""
            while b"\r\n\r\n" not in got or not got.endswith(BODY.encode()):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            socks.append(s)
        time.sleep(1)
        with_idle = rss_kib(pid)
    finally:
        for s in socks:
            s.close()
    per = (with_idle - before) / max(1, len(socks))
    log(f"idle {name}: {len(socks):,} connections, RSS {before / 1024:.1f} -> {with_idle / 1024:.1f} MiB ({per:.1f} KiB each)")
    return [f"{name}, {len(socks):,} idle keep-alive connections", f"{with_idle / 1024:.1f} MiB RSS", f"{per:.1f} KiB per connection", f"{before / 1024:.1f} MiB before"]


def refresh_storm(emu_base: str, gw_port: int) -> list[str]:
    """STORM concurrent requests carrying one expired session and its refresh token."""
    import threading

    expired = control(emu_base, "POST", "/emulator/mint", {"sub": "U2stormuser", "ttlSecs": -120, "claims": BENCH_CLAIMS})["token"]
    refresh = control(emu_base, "POST", "/emulator/mint", {"sub": "U2stormuser", "refresh": True, "ttlSecs": 3600, "claims": BENCH_CLAIMS})["token"]
    control(emu_base, "POST", "/emulator/calls/reset", {})
    statuses: list[int] = []
    lat: list[float] = []
    lock = threading.Lock()
    go = threading.Event()

    def one() -> None:
        go.wait()
        t0 = time.perf_counter()
        status, _, _ = http_get(f"http://127.0.0.1:{gw_port}/app/x", headers={"Cookie": f"DS={expired}; DSR={refresh}"}, timeout=10)
        with lock:
            statuses.append(status)
            lat.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=one) for _ in range(STORM)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    calls = control(emu_base, "GET", "/emulator/calls?path=/v1/auth/refresh")["count"]
    ok = sum(1 for s in statuses if s == 200)
    lat.sort()
    log(f"refresh storm: {STORM} requests, {ok} x 200, {calls} refresh call(s), slowest {lat[-1] * 1000:.1f} ms")
    return [f"refresh storm, {STORM} concurrent requests on one expired session", f"{calls} Descope refresh call(s)", f"{ok}/{STORM} answered 200", f"slowest {lat[-1] * 1000:.1f} ms"]


def start_perf(t: Target, scratch: Path) -> subprocess.Popen | None:
    """perf record the proxy for most of this round (PERF=target,target)."""
    if not shutil.which("perf"):
        log("PERF set but perf is not installed (apt-get install linux-perf): no profile")
        return None
    secs = max(1, int(to_ms(DURATION) / 1000) - 1)
    return subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, "perf", "record", "-q", "-F", "999", "--call-graph", PERF_CALLGRAPH,
         "-p", str(t.pid),
         "-o", str(scratch / f"perf-{t.name}.data"), "--", "sleep", str(secs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def perf_report(name: str, data: Path, cpu_us: float) -> None:
    # Where the round's CPU per request went, by binary: the kernel (the
    # sockets), the proxy's own code (with everything linked into it), libc.
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso", "--stdio", "-g", "none"],
        capture_output=True, text=True, check=False,
    ).stdout
    split = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if m and not line.startswith("#") and float(m.group(1)) >= 0.5:
            split.append(f"{m.group(2)} {float(m.group(1)) * cpu_us / 100:.1f}")
    print(f"\nperf, {name}: {cpu_us:.1f} CPU us/request in the profiled round = " + ", ".join(split))
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "--stdio", "-g", "none"],
        capture_output=True, text=True, check=False,
    ).stdout
    rows = [l.rstrip() for l in out.splitlines() if l.strip() and not l.startswith("#")]
    print(f"\nperf, {name} (self time, top 30):")
    for line in rows[:30]:
        print("  " + re.sub(r"\s{3,}", "   ", line.strip())[:160])
    if PERF_CALLGRAPH.startswith("dwarf") and name.startswith("portcullis"):
        # Inclusive time of the gateway's own functions: where its work goes.
        out = subprocess.run(
            ["perf", "report", "-i", str(data), "--children", "--sort", "symbol", "--stdio", "-g", "none"],
            capture_output=True, text=True, check=False,
        ).stdout
        # Named functions only (not the generic wrappers instantiated over them).
        own = [l for l in out.splitlines() if re.search(r"\[\.\] portcullis(_core)?::", l)]
        print(f"\nperf, {name} (inclusive time of portcullis functions, top 40):")
        for line in own[:40]:
            print("  " + re.sub(r"\s{3,}", "   ", line.strip())[:160])


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


# Each row's reference: the same kind of request through nginx in the same
# logging configuration.
REFERENCE = {
    "portcullis-public": "nginx",
    "portcullis-auth": "nginx+cookie",
    "portcullis-public-nolog": "nginx-nolog",
    "portcullis-auth-nolog": "nginx-nolog+cookie",
    "portcullis-cold-rs256": "nginx+cookie",
    "portcullis-cold-es256": "nginx+cookie",
    "portcullis-cold-es384": "nginx+cookie",
    "hyper-floor": "nginx-nolog",
    "hyper-floor+cookie": "nginx-nolog+cookie",
}


def report(targets: list[Target], extra_rows: list[list[str]]) -> None:
    by_name = {t.name: t for t in targets}
    nginx = by_name.get("nginx")
    ref_best = nginx.best() if nginx else None
    rows = []
    for t in targets:
        b = t.best()
        rss = rss_kib(t.pid) / 1024 if t.pid else None
        if b is None:
            rows.append([t.name, "failed", "", "", "", "", "", "", t.note])
            continue
        ref_t = by_name.get(REFERENCE.get(t.name, "nginx"))
        ref = ref_t.best() if ref_t else ref_best
        ratio = f"{b.rps / ref.rps:.2f}" if ref else "-"
        p99 = f"{b.p99_ms / ref.p99_ms:.2f}" if ref and ref.p99_ms else "-"
        vs = ref_t.name if ref_t else "-"
        bad = sum(r.bad for r in t.results)
        rows.append(
            [
                t.name,
                f"{b.rps:,.0f}",
                f"{b.p50_ms:.2f}",
                f"{b.p99_ms:.2f}",
                f"{rss:.1f}" if rss is not None else "-",
                f"{b.cpu_us_per_req:.1f}" if t.pid else "-",
                f"{ratio} vs {vs}",
                p99,
                t.note + (f" !{bad} errors" if bad else ""),
            ]
        )
    head = ["target", "req/s", "p50 ms", "p99 ms", "RSS MiB", "CPU us/req", "req/s ratio", "p99 ratio", "note"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |"
    print()
    print(
        f"Median of {ROUNDS} alternating round(s), {DURATION} each, wrk -t1 -c{CONNECTIONS}; proxy pinned to CPU {PROXY_CPU} "
        f"({WORKERS} nginx worker(s)), wrk + upstream on CPU {LOAD_CPU}; RSS after load; ratios against the nginx row "
        "named, same run, same logging configuration."
    )
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).rjust(w) if i in (1, 2, 3, 4, 5) else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |")
    auth, auth_off = by_name.get("portcullis-auth"), by_name.get("portcullis-auth-nolog")
    pub, pub_off = by_name.get("portcullis-public"), by_name.get("portcullis-public-nolog")
    for a, b, what in ((auth, auth_off, "auth"), (pub, pub_off, "public")):
        if a and b and a.best() and b.best():
            cost = 1 - a.best().rps / b.best().rps
            on, off = a.best().cpu_us_per_req, b.best().cpu_us_per_req
            cpu = f"; {(on / off - 1) * 100:+.1f}% CPU per request (steadier)" if on and off else ""
            print(f"access log cost ({what}): {cost * 100:+.1f}% of throughput{cpu} (log on vs off, same binary)")
    if extra_rows:
        print()
        for r in extra_rows:
            print("- " + r[0] + ": " + "; ".join(r[1:]))
    print()
    print("Targets: portcullis-auth >= 0.9x nginx+cookie, portcullis-public >= 0.95x nginx, p99 <= 1.2x, access log <= 5%.")
    print("This machine is noisy (+-15-25% between rounds); compare ratios from the same run only.")


if __name__ == "__main__":
    sys.exit(main())
