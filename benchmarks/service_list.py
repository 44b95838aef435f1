"""How long `GET /v1/searches` takes with many stored searches (issue 23: p99 under 100 ms at 1,000).

    python benchmarks/service_list.py [--searches 10 1000] [--trials 5] [--seconds 5]
        # -> benchmarks/results/service_list.{json,md}

For each count, writes that many finished searches (each a study with --trials trials and the
summary a worker keeps) into a throwaway SQLite file, starts `automl serve` on it (uvicorn, one
process), and runs 1, 8 and 32 client threads (keep-alive connections) for --seconds each,
against the first page (`?limit=100`) and the whole list (`?limit=1000`). Client and server share
the 2-core machine, so the figures are a floor.
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
import optuna

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(url: str, n: int, trials: int) -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    storage = optuna.storages.RDBStorage(url)
    dist = {"lr": FloatDistribution(1e-4, 1.0, log=True)}
    for i in range(n):
        study = optuna.create_study(study_name=f"search-{i:012d}", storage=storage, direction="maximize")
        for key, value in {"service_state": "done", "service_trials": trials, "metric": "val_acc",
                           "service_created": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
                           "service_request": {"space": "mlp", "dataset": "digits", "pruner": "signal"},
                           "service_progress": {"finished": trials, "best": {"number": 0, "value": 0.9}}}.items():
            study.set_user_attr(key, value)
        study.add_trials([create_trial(state=TrialState.COMPLETE, value=0.9 - 0.01 * j, params={"lr": 0.01},
                                       distributions=dist, intermediate_values={1: 0.5, 2: 0.9 - 0.01 * j})
                          for j in range(trials)])


def level(port: int, path: str, clients: int, seconds: float) -> dict:
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.time() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, bad = [], 0
        while time.time() < stop:
            t = time.perf_counter()
            conn.request("GET", path)
            res = conn.getresponse()
            res.read()
            mine.append(time.perf_counter() - t)
            bad += res.status != 200
        with lock:
            times.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ms = np.array(times) * 1000
    return {"path": path, "clients": clients, "requests": len(times), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "errors": errors[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--searches", type=int, nargs="+", default=[10, 1000])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for n in args.searches:
        tmp = Path(tempfile.mkdtemp(prefix="svc-list-"))
        url = f"sqlite:///{tmp / 'svc.db'}"
        t = time.time()
        fill(url, n, args.trials)
        print(f"{n} searches written in {time.time() - t:.0f} s", flush=True)
        port = _port()
        env = {**os.environ, "AUTOML_STORAGE": url, "AUTOML_API_TOKEN": "bench"}
        server = subprocess.Popen([sys.executable, "-m", "automl.cli", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(120):
                try:
                    http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/v1/health")
                    break
                except OSError:
                    time.sleep(0.5)
            for path in ("/v1/searches?limit=100", "/v1/searches?limit=1000"):
                level(port, path, 1, 1.0)  # warm
                for c in args.clients:
                    r = {"searches": n, **level(port, path, c, args.seconds)}
                    print(r, flush=True)
                    rows.append(r)
        finally:
            server.terminate()
            server.wait(30)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "service_list.json").write_text(json.dumps(rows, indent=1))
    lines = ["# `GET /v1/searches` with many stored searches", "",
             f"Command: `python benchmarks/service_list.py --searches {' '.join(map(str, args.searches))} --trials {args.trials} "
             f"--seconds {args.seconds:g}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
             f"{time.strftime('%Y-%m-%d')}. Client threads and the server share the machine.", "",
             "| stored searches | request | clients | requests | p50 ms | p99 ms | errors |", "|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['searches']} | `{r['path']}` | {r['clients']} | {r['requests']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |"
              for r in rows]
    one = [r for r in rows if r["searches"] == max(args.searches) and r["clients"] == 1 and "limit=100" in r["path"]]
    if one:
        lines += ["", f"Target (issue 23): p99 under 100 ms at 1,000 stored searches; one client, first page: "
                      f"{one[0]['p99_ms']} ms ({'met' if one[0]['p99_ms'] < 100 else 'NOT met'})."]
    (RESULTS / "service_list.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
