"""Deductions through HTTP (uvicorn, workers = cores) beside the same server's ceiling.

The load comes from wrk (Debian's `wrk`, C, two threads) so that the client costs
little CPU; both figures share the machine with the client, the server and PostgreSQL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import PG_URL, SMOKE, Figure, pg_schema

TOKEN = "bench-admin"
ACCOUNTS = 64
SECONDS = 2 if SMOKE else 10
BODY = ('{"operation":"image_generation","units":1,"model_id":"dall-e-3",'
        '"provider":"openai","cost_usd":"0.040"}')
LUA = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
local body = '{BODY}'
request = function()
  local a = math.random(0, {ACCOUNTS - 1})
  return wrk.format(nil, "/api/v1/accounts/acct-" .. a .. "/credits/deductions", nil, body)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn workers)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                             check=False)
        pids += [int(p) for p in out.stdout.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _wrk(url: str, connections: int, script: Path | None) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{SECONDS}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": rate, "p50": pct("50"), "p99": pct("99"),
            "non2xx": float(non2xx.group(1)) if non2xx else 0.0}


def run() -> list[Figure]:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): HTTP figures skipped")
        return []
    workers = os.cpu_count() or 2
    figures: list[Figure] = []
    with pg_schema() as schema, tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {**os.environ, "LEDGER_DATABASE_URL": PG_URL, "LEDGER_POSTGRES_SCHEMA": schema,
               "LEDGER_SECRET_KEY": "x" * 43 + "=", "LEDGER_BOOTSTRAP_ADMIN_TOKEN": TOKEN,
               "LEDGER_RUN_PROJECTIONS": "false", "LEDGER_RUN_WEBHOOKS": "false",
               "LEDGER_VAR_DIR": tmp}
        server = subprocess.Popen(
            [str(Path(os.sys.executable).with_name("ledger")), "serve", "--port", str(port),
             "--workers", str(workers), "--log-level", "warning"], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.2)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
                for a in range(ACCOUNTS):
                    c.post(f"/api/v1/accounts/acct-{a}/credits/purchases",
                           json={"credits": 10**9, "amount_usd": "1000000.00",
                                 "payment_ref": f"bench-{a}"}).raise_for_status()
            script = Path(tmp) / "deduct.lua"
            script.write_text(LUA)
            peak_rss = 0
            for connections in (16, 64):
                ceiling = _wrk(f"{base}/livez", connections, None)
                got = _wrk(base, connections, script)
                peak_rss = max(peak_rss, _tree_rss_kb(server.pid))
                figures.append(Figure(
                    f"HTTP deductions/s, {connections} connections, {workers} workers",
                    got["rate"], "/s", "same server, constant answer", ceiling["rate"],
                    ">= 60 % of ceiling, p99 < 50 ms at 64",
                    {"p50_ms": got["p50"], "p99_ms": got["p99"], "non_2xx": got["non2xx"],
                     "ratio_to_ceiling": round(got["rate"] / ceiling["rate"], 3),
                     "ceiling_p99_ms": ceiling["p99"]}))
            figures.append(Figure("server peak RSS during the HTTP load", peak_rss / 1024,
                                  "MiB", extra={"processes": workers + 1}))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    return figures
