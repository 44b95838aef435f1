"""A bounded load test of the service: ``POST /v1/diagnose`` at rising concurrency (issue 8).

    python benchmarks/service_load.py [--seconds 5] [--levels 1 2 4 8 16]
        # -> benchmarks/results/service.{json,md}

Starts ``automl serve`` (uvicorn, one process) on a free loopback port with a throwaway SQLite
storage, warms the diagnosis model with one request, then for each concurrency level runs that
many client threads (each one keep-alive HTTP connection, standard library) for ``--seconds``,
posting a 12-epoch run with gradients. Reports requests per second and p50/p99 latency, and the
share of non-200 answers. Client and server share the machine: the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RNG = np.random.default_rng(0)
N = 12
BODY = json.dumps({
    "train_loss": list(np.linspace(2.0, 0.3, N) + RNG.normal(0, 0.02, N)),
    "val_loss": list(np.linspace(2.1, 0.4, N) + RNG.normal(0, 0.02, N)),
    "train_acc": list(np.linspace(0.3, 0.92, N)), "val_acc": list(np.linspace(0.28, 0.9, N)),
    "grad_norm_first": [0.5] * N, "grad_norm_last": [0.8] * N, "zero_grad_frac": [0.02] * N,
}).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(conn: http.client.HTTPConnection) -> int:
    conn.request("POST", "/v1/diagnose", body=BODY, headers={"content-type": "application/json"})
    res = conn.getresponse()
    res.read()
    return res.status


def level(port: int, clients: int, seconds: float) -> dict:
    lat: list[float] = []
    bad = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, errors = [], 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                ok = _post(conn) == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - t0)
            errors += not ok
        conn.close()
        with lock:
            lat.extend(mine)
            bad[0] += errors

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {"clients": clients, "requests": len(a), "seconds": round(wall, 2), "rps": round(len(a) / wall, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "error_share": round(bad[0] / max(1, len(a)), 4)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="per level (all levels together stay within 30 s by default)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = ap.parse_args(argv)
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AUTOML_STORAGE": f"sqlite:///{tmp}/load.db"}
        server = subprocess.Popen([sys.executable, "-m", "automl.cli", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    if _post(conn) == 200:  # also loads the model
                        break
                except OSError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("the service did not come up")
                time.sleep(0.5)
            rows = [level(port, c, args.seconds) for c in args.levels]
        finally:
            server.terminate()
            server.wait(10)
    doc = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
           "endpoint": "POST /v1/diagnose", "body_bytes": len(BODY), "levels": rows}
    (RESULTS / "service.json").write_text(json.dumps(doc, indent=1))
    lines = ["# Service load test (issue 8)", "",
             f"Written by `python benchmarks/service_load.py`: {doc['endpoint']}, a 12-epoch run with gradients "
             f"({doc['body_bytes']} bytes), uvicorn with one process, clients on the same machine ({doc['machine']}), "
             f"{args.seconds:g} s per level.", "",
             "| clients | requests | req/s | p50 ms | p99 ms | errors |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['clients']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['error_share']:.1%} |" for r in rows]
    (RESULTS / "service.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
