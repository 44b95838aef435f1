"""The dynamical convergence study (issue 5): record, then measure.

    python benchmarks/dynamics_study.py record [--jobs 2]   # configs x 3 seeds, per-layer RMS every k steps
    python benchmarks/dynamics_study.py study               # lead, accuracy lost, false-early -> results/dynamics.*

``record`` writes curve banks under ``benchmarks/banks/dynamics/`` (resumable: re-run to finish):

- ``<dataset>_<family>``: digits and mnist1d x mlp and cnn, ``CONFIGS`` configurations each, every
  one trained with the seeds ``SEEDS`` for ``EPOCHS`` epochs (run id ``<config>-s<seed>``);
- ``mnist1d5_mlp`` / ``mnist1d10m_mlp``: the same mlp configurations on an easier task (mnist1d
  restricted to classes 0-4) and a harder one (all 10 classes, subsampled to the same number of
  training and validation samples). Same architecture, same steps per epoch, same k: the activation
  series have matched lengths, as the comparison of integration between tasks needs.

Every run logs the per-layer RMS activation of a fixed probe batch about 200+ times (k from
``automl.training.probe.auto_every_k_steps``).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BANKS = HERE / "banks" / "dynamics"
RESULTS = HERE / "results"
MAIN = (("digits", "mlp"), ("digits", "cnn"), ("mnist1d", "mlp"), ("mnist1d", "cnn"))
EASY_HARD = ("mnist1d5", "mnist1d10m")
DEV = ("digits_mlp", "mnist1d_cnn", "mnist5k_mlp")  # banks/<name>.jsonl.gz: where the settings were chosen
CONFIGS, SEEDS, EPOCHS, CONFIG_SEED = 6, (0, 1, 2), 40, 5


def study_dataset(name: str):
    """A bundled dataset, or one of the matched easy/hard variants of mnist1d."""
    from automl.training.data import from_tensors, load_dataset

    if name not in EASY_HARD:
        return load_dataset(name)
    base = load_dataset("mnist1d")
    keep = lambda y: np.flatnonzero(y.numpy() < 5)  # noqa: E731
    tr, va, te = keep(base.y_train), keep(base.y_val), keep(base.y_test)
    if name == "mnist1d10m":  # all 10 classes, as many samples as the 5-class task
        rng = np.random.default_rng(0)
        tr = np.sort(rng.choice(len(base.y_train), len(tr), replace=False))
        va = np.sort(rng.choice(len(base.y_val), len(va), replace=False))
        te = np.sort(rng.choice(len(base.y_test), len(te), replace=False))
    x = lambda t, i: t[i]  # noqa: E731
    return from_tensors(name, x(base.x_train, tr), x(base.y_train, tr), x(base.x_val, va), x(base.y_val, va),
                        x(base.x_test, te), x(base.y_test, te), n_classes=5 if name == "mnist1d5" else 10)


def bank_path(dataset: str, family: str) -> Path:
    return BANKS / f"{dataset}_{family}.jsonl.gz"


def configs(family: str) -> list[dict]:
    from search_spaces import get_space

    rng = np.random.default_rng(CONFIG_SEED)
    space = get_space(family)
    return [space.sample(rng) for _ in range(CONFIGS)]


def _one(args: tuple):
    dataset, family, i, config, seed = args
    import torch

    from automl.bench.recorder import run_row
    from automl.search import trial_seed
    from search_spaces import get_space

    torch.set_num_threads(1)
    return dataset, family, run_row(get_space(family), config, study_dataset(dataset), task=f"{dataset}_{family}",
                                    run_id=f"{i}-s{seed}", epochs=EPOCHS, seed=trial_seed(seed, config), metric="val_acc",
                                    direction="maximize", every_k_steps=None)


def record(jobs: int) -> None:
    from automl.bench.bank import iter_bank, write_bank

    BANKS.mkdir(parents=True, exist_ok=True)
    todo = []
    for dataset, family in (*MAIN, *((d, "mlp") for d in EASY_HARD)):
        path = bank_path(dataset, family)
        done = {r.run_id for r in iter_bank(path)} if path.exists() else set()
        todo += [(dataset, family, i, c, s) for i, c in enumerate(configs(family)) for s in SEEDS if f"{i}-s{s}" not in done]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for n, (dataset, family, run) in enumerate(pool.map(_one, todo), 1):
            write_bank(bank_path(dataset, family), [run], append=True)
            print(f"[{n}/{len(todo)} {time.perf_counter() - start:.0f} s] {run.task} {run.run_id}: "
                  f"val_acc {run.outcome:.3f}, {len(run.signals['act_steps'])} trace points", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--jobs", type=int, default=2)
    sub.add_parser("study")
    args = parser.parse_args()
    if args.cmd == "record":
        record(args.jobs)
    else:
        study()


# -- the study ------------------------------------------------------------------------------------
METHODS = ("converged", "rule", "acc_patience3", "null_rule", "null_converged", "loss_patience3", "loss_patience5")
LABELS = {
    "converged": "**converged verdict** (rule + null check + val_acc flat 3 epochs; shipped)",
    "rule": "dynamics rule alone (with null check)",
    "acc_patience3": "val_acc flat 3 epochs alone (the confirmation without the dynamics)",
    "null_rule": "null: the rule on a shifted-layer surrogate",
    "null_converged": "null + val_acc flat 3 epochs",
    "loss_patience3": "early stopping, patience 3 on val_loss",
    "loss_patience5": "early stopping, patience 5 on val_loss",
}


def plateau_epoch(acc: np.ndarray) -> int | None:
    """First epoch from which val accuracy stays within 0.5 pp of its max for 3 epochs."""
    top = np.nanmax(acc)
    for e in range(len(acc) - 2):
        if np.all(acc[e : e + 3] >= top - 0.005):
            return e + 1
    return None


def patience_stop(curve, patience: int, sign: float) -> int | None:
    """Epoch at which early stopping with ``patience`` ends a run (no new best for that many epochs)."""
    best, best_e = np.inf, 0
    for e, v in enumerate(curve, 1):
        v = sign * v
        if v < best:
            best, best_e = v, e
        elif e - best_e >= patience:
            return e
    return None


def _guarded(acc: np.ndarray, start: int | None, policy) -> int | None:
    """First epoch >= start at which the converged verdict's metric confirmation holds."""
    from automl.decision import TrialHistory, converged_verdict

    if start is None:
        return None
    for e in range(start, len(acc)):
        h = TrialHistory(0, dict(enumerate(acc[:e].tolist(), 1)), records=[{"epoch": e, "dynamics": {"converged_step": e}}])
        if converged_verdict(h, "maximize", policy) is not None:
            return e
    return None


def analyse_run(run) -> dict:
    import zlib

    from automl.bench.replay import steps_per_epoch
    from automl.decision import Policy
    from automl.signals.dynamics import converged_epoch, shifted_surrogate

    policy = Policy(convergence="dynamics")
    acc = np.asarray(run.curves["val_acc"], dtype=float)
    loss = np.asarray(run.curves["val_loss"], dtype=float)
    x = np.asarray(run.signals["act_rms"], dtype=float).T
    steps, spe = run.signals["act_steps"], steps_per_epoch(run)
    rule, _ = converged_epoch(x, steps, spe)
    null_x = shifted_surrogate(x, np.random.default_rng(zlib.crc32(f"{run.task}/{run.run_id}".encode())))
    null_rule, _ = converged_epoch(null_x, steps, spe, n_null=0)
    stops = {
        "rule": rule,
        "converged": _guarded(acc, rule, policy),
        "acc_patience3": _guarded(acc, 1, policy),
        "null_rule": null_rule,
        "null_converged": _guarded(acc, null_rule, policy),
        "loss_patience3": patience_stop(loss, 3, 1.0),
        "loss_patience5": patience_stop(loss, 5, 1.0),
    }
    finite = bool(np.isfinite(acc).all())
    n_classes = 5 if run.task.startswith("mnist1d5") else 10
    return {"task": run.task, "run_id": run.run_id, "budget": len(acc), "acc": acc.tolist(), "stops": stops,
            "plateau": plateau_epoch(acc) if finite else None,
            "learned": finite and float(np.nanmax(acc)) >= 1.0 / n_classes + 0.1, "points": len(steps)}


def score(rows: list[dict], method: str) -> dict:
    saved, lost, early, lead, fired = [], [], [], [], []
    for r in rows:
        T, acc = r["budget"], np.asarray(r["acc"])
        s = r["stops"][method]
        fired.append(s is not None)
        s = T if s is None else s
        saved.append((T - s) / T)
        lost.append(100.0 * (acc[-1] - acc[s - 1]))
        early.append(bool(acc[s - 1] < acc[-1] - 0.02))
        lead.append(r["plateau"] - s)
    if not rows:
        return {"n": 0}
    return {"n": len(rows), "fired": float(np.mean(fired)), "median_saved": float(np.median(saved)),
            "median_lost_pp": float(np.median(lost)), "mean_lost_pp": float(np.mean(lost)), "false_early": float(np.mean(early)),
            "median_lead": float(np.median(lead))}


def easy_vs_hard() -> dict:
    """Integration I (mean DFA exponent of the z-scored differences over the whole trace) of the
    same mlp configs and seeds on the 5-class and the matched 10-class mnist1d task."""
    from scipy.stats import wilcoxon

    from automl.bench.bank import read_bank
    from automl.signals.dynamics import diff_zscore, integration, metastability

    out = {}
    runs = {d: {r.run_id: r for r in read_bank(bank_path(d, "mlp"))} for d in EASY_HARD}
    pairs = sorted(set(runs[EASY_HARD[0]]) & set(runs[EASY_HARD[1]]))
    vals = {d: {"I": [], "M": [], "acc": [], "points": []} for d in EASY_HARD}
    for rid in pairs:
        for d in EASY_HARD:
            x = np.asarray(runs[d][rid].signals["act_rms"], dtype=float).T
            z = diff_zscore(x)
            vals[d]["I"].append(integration(z)[0])
            vals[d]["M"].append(metastability(z)[0])
            vals[d]["acc"].append(runs[d][rid].outcome)
            vals[d]["points"].append(x.shape[1])
    easy, hard = (np.asarray(vals[d]["I"]) for d in EASY_HARD)
    ok = np.isfinite(easy) & np.isfinite(hard)
    stat = wilcoxon(easy[ok], hard[ok]) if ok.sum() >= 6 else None
    out = {"pairs": int(ok.sum()), "matched_points": bool(vals[EASY_HARD[0]]["points"] == vals[EASY_HARD[1]]["points"]),
           "points": sorted(set(vals[EASY_HARD[0]]["points"])),
           "I_easy_median": float(np.median(easy[ok])), "I_hard_median": float(np.median(hard[ok])),
           "I_diff_median": float(np.median(hard[ok] - easy[ok])), "hard_gt_easy": float(np.mean(hard[ok] > easy[ok])),
           "wilcoxon_p": None if stat is None else float(stat.pvalue),
           "M_easy_median": float(np.nanmedian(vals[EASY_HARD[0]]["M"])), "M_hard_median": float(np.nanmedian(vals[EASY_HARD[1]]["M"])),
           "acc_easy_median": float(np.median(vals[EASY_HARD[0]]["acc"])), "acc_hard_median": float(np.median(vals[EASY_HARD[1]]["acc"])),
           "per_pair": {rid: {d: vals[d]["I"][i] for d in EASY_HARD} for i, rid in enumerate(pairs)}}
    return out


def replay_table(banks: list[tuple[str, str]]) -> dict:
    from automl.bench.bank import read_bank
    from automl.bench.replay import replay
    from automl.decision import Policy

    tasks = {}
    for dataset, family in banks:
        runs = read_bank(bank_path(dataset, family))
        tasks[runs[0].task] = runs
    out = {}
    for label, policy in (("without", Policy()), ("with", Policy(convergence="dynamics"))):
        doc = replay(tasks, ["none", "median", "asha", "signal", "signal-ray"], seeds=5, trials=100, policy=policy, jobs=2)
        out[label] = doc
    return out


def _plot(rows: list[dict], runs_by_id: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from automl.bench.replay import steps_per_epoch
    from automl.signals.dynamics import stability_series

    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.6 * len(rows)), sharex=False)
    for ax, r in zip(np.atleast_1d(axes), rows):
        run = runs_by_id[(r["task"], r["run_id"])]
        x = np.asarray(run.signals["act_rms"], dtype=float).T
        s = stability_series(x)
        spe = steps_per_epoch(run)
        ep = np.asarray(run.signals["act_steps"])[s.end] / spe
        ax.plot(ep, s.integration / 1.5, label="I / 1.5", lw=1)
        ax.plot(ep, s.metastability / 0.5, label="M / 0.5", lw=1)
        ax.plot(ep, s.dsi, label="DSI", lw=1.2)
        ax.plot(ep, s.volatility / np.nanmax(s.volatility), label="volatility / peak", lw=1.2)
        acc = np.asarray(r["acc"])
        ax.plot(np.arange(1, len(acc) + 1), acc, "k.-", label="val acc", lw=1)
        for key, style in (("converged", "r-"), ("loss_patience5", "b--")):
            if r["stops"][key] is not None:
                ax.axvline(r["stops"][key], color=style[0], ls=style[1:], lw=1.5, label=f"stop: {key}")
        if r["plateau"]:
            ax.axvline(r["plateau"], color="gray", ls=":", label="plateau")
        ax.set_title(f"{r['task']} run {r['run_id']}", fontsize=9)
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=6, ncol=4, loc="lower right")
    np.atleast_1d(axes)[-1].set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(RESULTS / "dynamics.png", dpi=110)
    plt.close(fig)


def study() -> None:
    import json

    from automl.bench.bank import read_bank

    runs = [r for d, f in MAIN for r in read_bank(bank_path(d, f))]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(analyse_run, runs))
    plateau = [r for r in rows if r["learned"] and r["plateau"] is not None and r["plateau"] <= r["budget"] - 3]
    table = {m: score(plateau, m) for m in METHODS}
    by_task = {t: {m: score([r for r in plateau if r["task"] == t], m) for m in ("converged", "loss_patience5")}
               for t in sorted({r["task"] for r in rows})}
    everything = {m: score([dict(r, plateau=r["plateau"] or r["budget"]) for r in rows if r["learned"]], m) for m in METHODS}
    # The development banks the settings were chosen on (one seed per config): shown, not a test.
    dev_runs = [r for name in DEV for r in read_bank(HERE / "banks" / f"{name}.jsonl.gz")]
    with ProcessPoolExecutor(max_workers=2) as pool:
        dev_rows = list(pool.map(analyse_run, dev_runs))
    dev_plateau = [r for r in dev_rows if r["learned"] and r["plateau"] is not None and r["plateau"] <= r["budget"] - 3]
    dev = {"runs": len(dev_rows), "plateau_runs": len(dev_plateau), "table": {m: score(dev_plateau, m) for m in METHODS}}
    eh = easy_vs_hard()
    rep = replay_table(list(MAIN))
    doc = {"runs": len(rows), "plateau_runs": len(plateau), "learned_runs": sum(r["learned"] for r in rows),
           "table": table, "by_task": by_task, "development": dev, "all_learned": everything, "easy_vs_hard": eh,
           "replay": {k: v["summary"] for k, v in rep.items()},
           "replay_tasks": {k: v["tasks"] for k, v in rep.items()}, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dynamics.json").write_text(json.dumps(doc, indent=1))
    by_id = {(r.task, r.run_id): r for r in runs}
    picks = [r for r in plateau if r["stops"]["converged"] is not None][:2] + \
            [r for r in plateau if r["stops"]["converged"] is None][:1] + [r for r in rows if not r["learned"]][:1]
    _plot(picks, by_id)
    (RESULTS / "dynamics.md").write_text(report(doc))
    print(report(doc))


def report(doc: dict) -> str:
    t = doc["table"]
    p5 = t["loss_patience5"]
    c = t["converged"]
    wins = [c["median_saved"] > p5["median_saved"], c["median_lost_pp"] < p5["median_lost_pp"], c["false_early"] < p5["false_early"]]

    def line(name: str, s: dict) -> str:
        if not s.get("n"):
            return f"| {LABELS.get(name, name)} | 0 | | | | | |"
        return (f"| {LABELS.get(name, name)} | {s['n']} | {s['fired']:.0%} | {s['median_saved']:.0%} | {s['median_lost_pp']:+.2f} "
                f"({s['mean_lost_pp']:+.2f}) | {s['false_early']:.1%} | {s['median_lead']:+.1f} |")

    head = "| stop rule | runs | fired | median budget saved | acc lost, pp: median (mean) | false-early | median lead, epochs |\n| --- | --- | --- | --- | --- | --- | --- |"
    eh = doc["easy_vs_hard"]
    rw, rn = doc["replay"]["with"], doc["replay"]["without"]
    rep_rows = "\n".join(
        f"| {p} | {rn[p]['median_cost_ratio_vs_none']:.3f} / {rw[p]['median_cost_ratio_vs_none']:.3f} | "
        f"{rn[p]['median_norm_regret']:.3f} / {rw[p]['median_norm_regret']:.3f} | {rn[p]['kept_best_rate']:.0%} / {rw[p]['kept_best_rate']:.0%} |"
        for p in rn)
    task_rows = "\n".join(
        f"| {task} | {v['converged'].get('n', 0)} | " + (f"{v['converged']['median_saved']:.0%} / {v['loss_patience5']['median_saved']:.0%} | "
        f"{v['converged']['median_lost_pp']:+.2f} / {v['loss_patience5']['median_lost_pp']:+.2f} | "
        f"{v['converged']['false_early']:.0%} / {v['loss_patience5']['false_early']:.0%} |" if v['converged'].get('n') else " | | |")
        for task, v in doc["by_task"].items())
    meets = [c["median_saved"] >= 0.25, c["median_lost_pp"] <= 0.3, c["false_early"] <= 0.05, sum(wins) >= 2]
    return f"""# Dynamical convergence signals: do they say when more epochs will not help? (issue 5)

`python benchmarks/dynamics_study.py record && python benchmarks/dynamics_study.py study`; CPU, 2 cores.
Runs: {doc['runs']} real trainings in `benchmarks/banks/dynamics/` (digits and mnist1d x mlp and cnn,
{CONFIGS} configurations x seeds {list(SEEDS)}, {EPOCHS} epochs, per-layer RMS of a fixed 32-sample probe
batch every k steps, {min(r['points'] for r in doc['rows'])}-{max(r['points'] for r in doc['rows'])} points a run).
{doc['learned_runs']} learned something (val acc above chance + 10 pp); **{doc['plateau_runs']} plateau** (val acc within 0.5 pp
of its max for 3 epochs, reached at least 3 epochs before the budget): the targets are measured on those.

The rule's settings (64-point DSI window, 16-window volatility, 0.3 of the running peak for 3 points)
and the confirmation (val_acc without a new best for 3 epochs) were **chosen on other banks**
(`benchmarks/banks/{{digits_mlp,mnist1d_cnn,mnist5k_mlp}}.jsonl.gz`, 450 runs, one seed each); these
runs were recorded afterwards and not used to choose anything.

## On runs that plateau

Budget saved = (budget − stop epoch) / budget (0 when a rule never fires); accuracy lost = final val acc −
val acc at the stop; false-early = stopped more than 2 pp below the final val acc; lead = plateau epoch −
stop epoch (positive: the stop came before the plateau).

{head}
{chr(10).join(line(m, t[m]) for m in METHODS)}

Targets for the converged verdict: median saved ≥ 25%: **{'met' if meets[0] else 'not met'}** ({c['median_saved']:.0%});
median lost ≤ 0.3 pp: **{'met' if meets[1] else 'not met'}** ({c['median_lost_pp']:+.2f} pp);
false-early ≤ 5%: **{'met' if meets[2] else 'not met'}** ({c['false_early']:.1%});
better than patience-5 on at least two of the three: **{'met' if meets[3] else 'not met'}** ({sum(wins)} of 3: saved {'yes' if wins[0] else 'no'},
lost {'yes' if wins[1] else 'no'}, false-early {'yes' if wins[2] else 'no'}).

Per task (converged / patience 5 on val_loss):

| task | plateau runs | saved | lost, pp | false-early |
| --- | --- | --- | --- | --- |
{task_rows}

All {doc['learned_runs']} runs that learned, whether or not they plateau (lead counted to the budget when there is no plateau):

{head}
{chr(10).join(line(m, doc['all_learned'][m]) for m in METHODS)}

On the development banks ({doc['development']['runs']} runs, {doc['development']['plateau_runs']} plateau; the settings were chosen
there, so this is not a test, only the scale of the same figures on more runs):

{head}
{chr(10).join(line(m, doc['development']['table'][m]) for m in METHODS)}

## Integration separates an easier from a harder task?

The same {eh['pairs']} mlp configurations and seeds on mnist1d restricted to 5 classes and on all 10
classes subsampled to the same number of samples (same steps, same k: matched series of {eh['points']} points;
matched: {eh['matched_points']}). I = mean DFA exponent of the z-scored differences of the whole trace.

| | easy (5 classes) | hard (10 classes) |
| --- | --- | --- |
| median final val acc | {eh['acc_easy_median']:.3f} | {eh['acc_hard_median']:.3f} |
| median integration I | {eh['I_easy_median']:.3f} | {eh['I_hard_median']:.3f} |
| median metastability M | {eh['M_easy_median']:.3f} | {eh['M_hard_median']:.3f} |

Paired: median difference I(hard) − I(easy) = {eh['I_diff_median']:+.3f}; hard > easy in {eh['hard_gt_easy']:.0%} of pairs;
Wilcoxon signed-rank p = {eh['wilcoxon_p'] if eh['wilcoxon_p'] is None else f"{eh['wilcoxon_p']:.3g}"}.

## Replay: the pruner with and without the converged verdict

The same banks replayed (`automl.bench.replay`, 5 seeds, every run of a task drawn), `Policy()` vs
`Policy(convergence="dynamics")`; only `signal` and `signal-ray` read the policy (the others are
repeated as a check). A converged run finishes with the value it reached.

| pruner | cost vs none (without / with) | normalised regret (without / with) | kept best (without / with) |
| --- | --- | --- | --- |
{rep_rows}

![I, M, DSI, volatility and val accuracy over training](dynamics.png)
"""


if __name__ == "__main__":
    main()
