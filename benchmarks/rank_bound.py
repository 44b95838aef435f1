"""How cheap can pruning by rank get while it keeps the best run? A hindsight bound.

Every pruner in the replay benchmark, ours and the built-ins, stops a run mostly for where it
stands among the other runs at an epoch (ASHA and Hyperband by rung rank, the median rules by the
median, the signal pruner's rank cut and forecast by its peers). This script asks what the
cheapest such rule could do with information no pruner has: at every epoch, each run is ranked
among **all** the drawn runs of its study (the ones drawn after it included, none of them pruned),
and a schedule of cuts ``q_e`` stops a run at the first epoch ``e`` where more than the fraction
``q_e`` of the runs are ahead of it. The schedule is chosen, in hindsight, on the very task-seeds
it is scored on: the cheapest (median cost over task-seeds, as a ratio to no pruning) that keeps
the best run in at least ``--keep`` of them.

So the figure is optimistic twice over (full-population ranks, in-sample choice): a sequential
pruner that ranks by the metric does not beat it by more than luck. Where it lies above a target,
no rank rule reaches that target; where it lies below, the gap is what running the study one run
at a time costs, plus what the rule leaves on the table; the report measures the first part by
running the chosen schedule one trial after another, as a pruner would.

    python benchmarks/rank_bound.py --bank benchmarks/banks/taskset_imdb_rnn.jsonl.gz --trials 200 --name "TaskSet (12 tasks)"
    python benchmarks/rank_bound.py --bank benchmarks/banks/{digits_mlp,mnist5k_mlp,mnist1d_cnn}.jsonl.gz --trials 150 \
        --name "our banks (digits_mlp, mnist5k_mlp, mnist1d_cnn)" \
        --apply-from "TaskSet (12 tasks)"

Writes benchmarks/results/rank_bound.md (one section per ``--name``) and .json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np

from automl.bench.bank import read_bank, runs_by_task
from automl.bench.replay import draw_order

RESULTS = Path(__file__).resolve().parent / "results"

# The schedule family: a cut at epoch 1, a cut at epoch 2, then down (linearly in log-epoch) to a
# floor reached at epoch ``floor_at`` and kept after it. 1.0 = no cut at that epoch.
Q1 = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
Q2 = (1.0, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)
FLOOR = (1.0, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.02, 0.01)
FLOOR_AT = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20)


def schedule(q1: float, q2: float, floor: float, floor_at: int, budget: int) -> np.ndarray:
    """The cut at each epoch 1..budget (index 0 = epoch 1)."""
    q = np.empty(budget)
    q[0] = q1
    for e in range(2, budget + 1):
        if e >= floor_at:
            q[e - 1] = floor
        else:
            w = np.log(e / 2.0) / np.log(floor_at / 2.0)
            q[e - 1] = q2 + w * (floor - q2)
    return q


def study(runs: list, seed: int, trials: int) -> dict:
    """One task-seed, in the drawn order: each run's signed values (a non-finite one as +inf), its
    share of the study's runs ahead of it at each epoch (itself counted in the total, as ``decide``
    counts), its length, and which runs tie for the best outcome."""
    task = runs[0].task
    drawn = [runs[i] for i in draw_order(task, len(runs), seed, trials)]
    sign = 1.0 if drawn[0].direction == "minimize" else -1.0
    lengths = np.array([r.budget for r in drawn])
    budget = int(lengths.max())
    v = np.full((len(drawn), budget), np.nan)
    for i, r in enumerate(drawn):
        v[i, : r.budget] = sign * np.asarray(r.values, dtype=float)
    present = np.arange(budget)[None, :] < lengths[:, None]
    worst = np.where(present & ~np.isfinite(v), np.inf, v)  # a diverged value stands behind every finite one
    ahead = np.zeros_like(v)
    for e in range(budget):
        col = worst[:, e]
        at = present[:, e]
        others = col[at]
        ahead[at, e] = (others[None, :] < col[at, None]).sum(axis=1) / len(others)
    outcomes = np.array([worst[i, lengths[i] - 1] for i in range(len(drawn))])
    best = outcomes == outcomes.min()
    return {"values": worst, "ahead": ahead, "present": present, "lengths": lengths, "best": best,
            "full": int(lengths.sum())}


def _kept(stopped: np.ndarray, best: np.ndarray) -> bool:
    return bool((~stopped[best]).any())  # as the replay counts it: some run tied for the best survived


def score(studies: list[dict], q_by_budget: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """In hindsight: cost ratio vs no pruning and whether the best run was kept, per task-seed. A run
    stops at its first non-finite value or the first epoch where more than ``q_e`` of the runs are ahead."""
    costs, kept = [], []
    for s in studies:
        budget = s["ahead"].shape[1]
        q = q_by_budget[budget]
        cut = ((s["ahead"] > q[None, :]) | np.isinf(s["values"])) & s["present"]
        cut[np.arange(len(cut)), s["lengths"] - 1] = False  # stopping at the last epoch saves nothing
        stopped = cut.any(axis=1)
        used = np.where(stopped, cut.argmax(axis=1) + 1, s["lengths"])
        costs.append(used.sum() / s["full"])
        kept.append(_kept(stopped, s["best"]))
    return np.asarray(costs), np.asarray(kept)


def sequential(s: dict, q: np.ndarray, min_finished: int) -> tuple[float, bool]:
    """The same schedule as a pruner sees it: runs one after another in the drawn order, each ranked
    at an epoch among the runs before it (a run stopped before that epoch counts as behind, one that
    finished shorter by its last value), cutting only once ``min_finished`` runs ran to their end.
    Returns the cost ratio vs no pruning and whether the best run was kept."""
    values, lengths = s["values"], s["lengths"]
    n = len(lengths)
    used = np.zeros(n, dtype=int)
    finished = np.zeros(n, dtype=bool)
    last = values[np.arange(n), lengths - 1]
    for i in range(n):
        stop = int(lengths[i])
        enough = finished[:i].sum() >= min_finished
        for e in range(lengths[i] - 1):  # the last epoch: stopping saves nothing
            x = values[i, e]
            if np.isinf(x):
                stop = e + 1
                break
            if not enough or i == 0:
                continue
            reached = used[:i] > e
            n_ahead = int((values[:i, e][reached] < x).sum() + (last[:i][~reached & finished[:i]] < x).sum())
            if n_ahead > q[e] * (i + 1):
                stop = e + 1
                break
        used[i], finished[i] = stop, stop == lengths[i]
    return float(used.sum() / s["full"]), _kept(~finished, s["best"])


def search(studies: list[dict], task_of: np.ndarray, keep: float) -> dict:
    """Every schedule of the family scored on every study; the cheapest that keeps the best run in
    at least ``keep`` of the studies (one schedule for all), the cheapest at other kept rates, and the
    cheapest per task (each task its own schedule, keeping the best in ``keep`` of its studies)."""
    budgets = sorted({s["ahead"].shape[1] for s in studies})
    params, costs, kept = [], [], []
    for q1, q2, floor, at in itertools.product(Q1, Q2, FLOOR, FLOOR_AT):
        if floor > q2 or (at == 2) != (floor == q2):  # floor == q2: one flat schedule, whatever floor_at
            continue
        c, k = score(studies, {b: schedule(q1, q2, floor, at, b) for b in budgets})
        params.append({"q1": q1, "q2": q2, "floor": floor, "floor_at": at})
        costs.append(c)
        kept.append(k)
    costs, kept = np.asarray(costs), np.asarray(kept)  # schedules x studies
    medians, rates = np.median(costs, axis=1), kept.mean(axis=1)

    def cheapest(rate: float) -> dict:
        i = int(np.argmin(np.where(rates >= rate - 1e-12, medians, np.inf)))  # no pruning always qualifies
        return {**params[i], "median_cost_ratio_vs_none": float(medians[i]), "kept_best_rate": float(rates[i])}

    per_cost, per_kept = np.empty(len(studies)), np.empty(len(studies), dtype=bool)
    for t in np.unique(task_of):
        cols = task_of == t
        ok = kept[:, cols].mean(axis=1) >= keep - 1e-12
        i = int(np.argmin(np.where(ok, np.median(costs[:, cols], axis=1), np.inf)))
        per_cost[cols], per_kept[cols] = costs[i, cols], kept[i, cols]
    return {
        "schedules": len(params),
        "chosen": cheapest(keep),
        "frontier": [{"kept_at_least": r, **cheapest(r)} for r in (1.0, 0.95, 0.9, 0.8, 0.6)],
        "per_task": {"median_cost_ratio_vs_none": float(np.median(per_cost)), "kept_best_rate": float(per_kept.mean())},
    }


def run_in_order(studies: list[dict], params: dict) -> list[dict]:
    """One schedule (``params``: :func:`schedule`'s cuts, other keys ignored) run one trial at a time
    (:func:`sequential`), cutting from 1 and from 5 finished trials."""
    cuts = {k: params[k] for k in ("q1", "q2", "floor", "floor_at")}
    out = []
    for wait in (1, 5):
        seq = [sequential(s, schedule(**cuts, budget=s["ahead"].shape[1]), wait) for s in studies]
        out.append({"min_finished": wait, "median_cost_ratio_vs_none": float(np.median([x[0] for x in seq])),
                    "kept_best_rate": float(np.mean([x[1] for x in seq]))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", nargs="+", required=True)
    parser.add_argument("--name", default=None, help="the section's name in the report (default: the banks' names)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--keep", type=float, default=0.9, help="kept-best rate the schedule must reach")
    parser.add_argument("--out", default=str(RESULTS / "rank_bound"))
    parser.add_argument("--apply-from", default=None, metavar="NAME",
                        help="also score the schedule chosen in the report's section NAME on these banks")
    args = parser.parse_args()
    if not 0.0 < args.keep <= 1.0:
        parser.error(f"--keep must lie in (0, 1], got {args.keep}")
    if args.seeds < 1 or args.trials < 2:
        parser.error(f"--seeds must be >= 1 and --trials >= 2, got {args.seeds} and {args.trials}")

    t0 = time.perf_counter()
    tasks: dict = {}
    for path in args.bank:
        tasks.update(runs_by_task(read_bank(path)))
    studies = [study(runs, seed, args.trials) for runs in tasks.values() for seed in range(args.seeds)]
    task_of = np.repeat(np.arange(len(tasks)), args.seeds)
    found = search(studies, task_of, args.keep)
    found["sequential"] = run_in_order(studies, found["chosen"])
    out_json = Path(args.out + ".json")
    store = json.loads(out_json.read_text()) if out_json.exists() else {}
    if args.apply_from is not None:
        if args.apply_from not in store:
            parser.error(f"--apply-from {args.apply_from!r}: no such section in {out_json}; it has {sorted(store)}")
        other = {k: store[args.apply_from]["chosen"][k] for k in ("q1", "q2", "floor", "floor_at")}
        budgets = sorted({s["ahead"].shape[1] for s in studies})
        costs, kept = score(studies, {b: schedule(**other, budget=b) for b in budgets})
        found["applied"] = {"from": args.apply_from, **other, "median_cost_ratio_vs_none": float(np.median(costs)),
                            "kept_best_rate": float(kept.mean()), "sequential": run_in_order(studies, other)}
    name = args.name or " + ".join(Path(p).name.split(".")[0] for p in args.bank)
    result = {
        "name": name, "banks": [Path(p).name for p in args.bank], "seeds": args.seeds, "trials": args.trials,
        "task_seeds": len(studies), "keep": args.keep, **found,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "wall_s": round(time.perf_counter() - t0, 1),
    }

    store[name] = result
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(store, indent=1) + "\n")
    Path(args.out + ".md").write_text(_report(store))
    print(json.dumps({"name": name, "chosen": found["chosen"], "per_task": found["per_task"]}, indent=1))


def _report(store: dict) -> str:
    lines = [
        "# Pruning by rank, in hindsight: the cheapest schedule that keeps the best run",
        "",
        "Command: `python benchmarks/rank_bound.py --bank BANK ... --trials N` (module docstring). "
        "Each run is ranked at every epoch among all the drawn runs of its study (none pruned, later ones "
        "included), and stopped at the first epoch where more than the fraction `q_e` of them are ahead; the "
        f"schedules ({len(Q1)} epoch-1 cuts x {len(Q2)} epoch-2 cuts x {len(FLOOR)} floors x {len(FLOOR_AT)} "
        "epochs the floor is reached at, linear in log-epoch between) are scored on the same task-seeds they are "
        "chosen on. Cost = median over task-seeds of epochs used / epochs without pruning; kept best = the best "
        "run (or one tied with it) never stopped. A sequential pruner ranking by the metric sees less and does not "
        "beat this by more than luck.",
        "",
    ]
    for name, r in store.items():
        c = r["chosen"]
        lines += [
            f"## {name}",
            "",
            f"{r['task_seeds']} task-seeds ({r['trials']} runs drawn each, seeds 0..{r['seeds'] - 1}), "
            f"{r['schedules']} schedules; {r['machine']}, {r['wall_s']} s.",
            "",
            "| kept best at least | cost vs none | kept best | epoch-1 cut | epoch-2 cut | floor | floor from epoch |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for f in r["frontier"]:
            lines.append(f"| {f['kept_at_least']:.0%} | {f['median_cost_ratio_vs_none']:.3f} | {f['kept_best_rate']:.0%} | "
                         f"{f['q1']:g} | {f['q2']:g} | {f['floor']:g} | {f['floor_at']} |")
        p = r["per_task"]
        lines += [
            "",
            f"One schedule for all, kept best >= {r['keep']:.0%}: cost **{c['median_cost_ratio_vs_none']:.3f}**. "
            f"Each task its own schedule (kept best in >= {r['keep']:.0%} of its seeds): cost "
            f"**{p['median_cost_ratio_vs_none']:.3f}**, kept best {p['kept_best_rate']:.0%}.",
            "",
            "The one schedule run as a pruner runs it, one trial after another, each ranked among the trials "
            "before it: "
            + "; ".join(f"cutting once {q['min_finished']} trial{'s' if q['min_finished'] > 1 else ''} finished, cost "
                        f"{q['median_cost_ratio_vs_none']:.3f}, kept best {q['kept_best_rate']:.0%}" for q in r["sequential"])
            + ".",
            "",
        ]
        a = r.get("applied")
        if a:
            lines += [
                f"The schedule chosen for {a['from']} ({a['q1']:g} / {a['q2']:g} / floor {a['floor']:g} from epoch "
                f"{a['floor_at']}) on these banks: in hindsight cost {a['median_cost_ratio_vs_none']:.3f}, kept best "
                f"{a['kept_best_rate']:.0%}; one trial at a time "
                + "; ".join(f"from {q['min_finished']} finished, cost {q['median_cost_ratio_vs_none']:.3f}, kept best "
                            f"{q['kept_best_rate']:.0%}" for q in a["sequential"])
                + ".",
                "",
            ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
