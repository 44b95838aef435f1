"""What optuna-dashboard shows of a study `automl search` wrote: the prune reason, not the records.

    pip install optuna-dashboard && python benchmarks/dashboard_check.py

Runs a small pruned search on digits into a SQLite file, serves it with optuna-dashboard, opens a
pruned trial's page in headless Chromium at 1400 x 1000 px, checks that its `prune_reason` is shown
inside the window and that no per-epoch record is among the user attributes, and keeps a screenshot
in benchmarks/results/dashboard_trial.png with a note in dashboard_check.md.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

RESULTS = Path(__file__).resolve().parent / "results"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    tmp = Path(tempfile.mkdtemp(prefix="dashboard-check-"))
    db = f"sqlite:///{tmp / 'study.db'}"
    automl = str(Path(sys.executable).parent / "automl")
    subprocess.run([automl, "search", "--space", "mlp", "--dataset", "digits", "--trials", "16", "--epochs", "12",
                    "--storage", db, "--study", "dash", "--seed", "0", "--json"], check=True, capture_output=True)
    study = optuna.load_study(study_name="dash", storage=db)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, "the search pruned nothing; nothing to look at"
    trial = pruned[0]
    user_keys = sorted(trial.user_attrs)
    port = _port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"), db, "--port", str(port), "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        for _ in range(60):  # wait for the local dashboard server to answer
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/dashboard")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                     "--window-size=1400,1000"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        try:
            study_id = study._study_id  # noqa: SLF001 - the dashboard's URLs use it
            driver.get(f"http://127.0.0.1:{port}/dashboard/studies/{study_id}/trials?numbers={trial.number}")
            reason = trial.user_attrs["prune_reason"]
            needle = reason[:40]
            found = None
            for _ in range(60):
                time.sleep(0.5)
                # the innermost shown element whose text holds the reason's start
                hits = [e for e in driver.find_elements(By.XPATH, f"//*[contains(normalize-space(.), {needle[:30]!r})]")
                        if e.is_displayed()]
                if hits:
                    found = hits[-1]
                    break
            RESULTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(RESULTS / "dashboard_trial.png"))
            # its start, and the reason's full width, lie inside the 1400 px window
            inside = found is not None and found.rect["x"] >= 0 and found.rect["x"] + found.rect["width"] <= 1400
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
    records = [k for k in user_keys if k.startswith("record_")]
    text = "\n".join([
        "# optuna-dashboard on a study `automl search` wrote",
        "",
        f"Command: `python benchmarks/dashboard_check.py` (optuna-dashboard {__import__('optuna_dashboard').__version__}, "
        f"Optuna {optuna.__version__}; headless Chromium at 1400 x 1000 px; {time.strftime('%Y-%m-%d')})",
        "",
        f"- pruned trial {trial.number}: its user attributes are {', '.join(user_keys)}",
        f"- per-epoch records among them: {len(records)} (they are system attributes: "
        f"{sum(k.startswith('record_') for k in trial.system_attrs)} of them on this trial)",
        f"- `prune_reason` found on the trial page and inside the window: {'yes' if inside else 'NO'}",
        f"- reason: {reason}",
        "",
        "Screenshot: `dashboard_trial.png`.",
        "",
    ])
    (RESULTS / "dashboard_check.md").write_text(text)
    print(text)
    if records or not inside:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
