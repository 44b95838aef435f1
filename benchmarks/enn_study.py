"""Guidance networks (issue 7): build the zoo, measure gains, fit the recommender, evaluate guided
training against plain backprop, L1, He init, a statistics-only ENN and β = 0, explain with
Grad-CAM, and write ``benchmarks/results/enn.md``.

    python benchmarks/enn_study.py zoo        # K=6 ENNs -> automl/models/enn/ (= `automl enn train`, step 1)
    python benchmarks/enn_study.py gains      # 12 architectures x 6 ENNs x 15 seeds -> gains.json, recommender.json
    python benchmarks/enn_study.py evaluate   # 10 seeds x 6 arms x 6 architectures on mnist5k and digits
    python benchmarks/enn_study.py sweep      # β from 0 to 300 on one architecture, 10 seeds
    python benchmarks/enn_study.py confirm    # the sweep's best β against plain on fresh seeds
    python benchmarks/enn_study.py explain    # Grad-CAM PNG, top-k% map vs a random mask as a subnetwork
    python benchmarks/enn_study.py report     # benchmarks/results/enn.md + PNGs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def cmd_zoo(args) -> None:
    from automl.guidance.recommender import build_zoo

    t = time.time()
    metas = build_zoo(jobs=args.jobs, replace_shipped=True, runs=args.runs, guided_runs=args.guided_runs)
    for m in metas:
        print(m["name"], "beta", m["beta"], "R2 holdout", [round(r["r2_holdout"], 3) for r in m["fit"]], flush=True)
    print(f"zoo built in {time.time() - t:.0f} s", flush=True)


def cmd_gains(args) -> None:
    from automl.guidance.recommender import fit_recommender, measure_gains

    t = time.time()
    doc = measure_gains(seeds=range(args.seeds), jobs=args.jobs, resume=args.resume, replace_shipped=True)
    print(f"gains measured in {time.time() - t:.0f} s", flush=True)
    for arch, cells in doc["table"].items():
        print(arch, {k: round(v["mean"], 2) for k, v in cells.items()}, flush=True)
    print(json.dumps(fit_recommender(replace_shipped=True), indent=1))


EVAL_ARCHS = [(784, 64, 10), (784, 128, 10), (784, 256, 10), (784, 128, 64, 10), (64, 64, 10), (64, 64, 32, 10)]
EVAL_EPOCHS = 15
ARMS = ("plain", "l1", "he", "enn", "stats", "beta0")
L1_GRID = (1e-5, 1e-4, 1e-3)


def _eval_run(args):
    """One arm on one architecture and seed: ``(arm, dims, dataset, enn_file, beta, l1, seed, epochs)``."""
    import torch

    from automl.guidance.enn import build_mlp, guided_fit, load_enn
    from automl.training.data import load_dataset

    arm, dims, dataset, enn_file, beta, l1, seed, epochs = args
    torch.set_num_threads(1)
    enn = load_enn(enn_file)[0] if enn_file else None
    model = build_mlp(dims, init="he" if arm == "he" else "default", seed=seed)
    res = guided_fit(model, load_dataset(dataset), enn, beta, epochs=epochs, l1=l1, seed=seed)
    f = res.final
    return {"arm": arm, "arch": "-".join(map(str, dims)), "dataset": dataset, "seed": seed, "beta": beta, "l1": l1,
            "test_acc": f["test_acc"], "val_acc": f["val_acc"], "train_acc": f["train_acc"],
            "grad_ratio": [h["grad_ratio"] for h in res.history], "test_curve": [h["test_acc"] for h in res.history]}


def _pool(fn, jobs_args, jobs):
    from automl.guidance.recommender import pool_map

    return pool_map(fn, jobs_args, jobs)


def cmd_evaluate(args) -> None:
    """Item 3: equal epochs, paired seeds, every arm on every architecture; L1's λ and the
    statistics ENN's β for digits are chosen on tuning seeds like the zoo's β."""
    from automl.guidance.recommender import BETAS, DATASET_BY_INPUT, ZOO, build_one, load_zoo

    zoo = load_zoo()
    metas = {e["name"]: e for e in zoo["enns"]}
    out = RESULTS / "enn_eval"
    out.mkdir(parents=True, exist_ok=True)
    # a statistics-only ENN for digits (the zoo's is trained on mnist5k)
    stats_digits = out / "enn-stats-digits.pt"
    meta_file = out / "stats-digits.json"
    if not meta_file.is_file():
        spec = {**next(z for z in ZOO if z["name"] == "img-digits"), "name": "stats-digits", "kind": "stats", "channels": None}
        meta = build_one((spec, str(out), 60, 30, 10))
        meta_file.write_text(json.dumps(meta))
    sd_meta = json.loads(meta_file.read_text())
    enn_for = {"mnist5k": ("img-m5k-a", "stats-m5k"), "digits": ("img-digits", None)}
    # L1 strength on tuning seeds 10000..10002, per dataset, on the first architecture of each
    l1_of = {}
    for ds in ("mnist5k", "digits"):
        dims = next(a for a in EVAL_ARCHS if DATASET_BY_INPUT[a[0]] == ds)
        tries = _pool(_eval_run, [("l1", dims, ds, None, 0.0, lam, 10_000 + s, EVAL_EPOCHS) for lam in L1_GRID for s in range(3)],
                      args.jobs)
        l1_of[ds] = max(L1_GRID, key=lambda lam: np.mean([r["val_acc"] for r in tries if r["l1"] == lam]))
    jobs = []
    for dims in EVAL_ARCHS:
        ds = DATASET_BY_INPUT[dims[0]]
        img, st = enn_for[ds]
        img_file, img_beta = str(zoo["dir"] / metas[img]["file"]), metas[img]["beta"]
        st_file, st_beta = (str(zoo["dir"] / metas[st]["file"]), metas[st]["beta"]) if st else (str(stats_digits), sd_meta["beta"])
        for seed in range(args.seeds):
            jobs += [("plain", dims, ds, None, 0.0, 0.0, seed, EVAL_EPOCHS),
                     ("l1", dims, ds, None, 0.0, l1_of[ds], seed, EVAL_EPOCHS),
                     ("he", dims, ds, None, 0.0, 0.0, seed, EVAL_EPOCHS),
                     ("enn", dims, ds, img_file, img_beta, 0.0, seed, EVAL_EPOCHS),
                     ("stats", dims, ds, st_file, st_beta, 0.0, seed, EVAL_EPOCHS),
                     ("beta0", dims, ds, img_file, 0.0, 0.0, seed, EVAL_EPOCHS)]
    t = time.time()
    rows = _pool(_eval_run, jobs, args.jobs)
    doc = {"epochs": EVAL_EPOCHS, "seeds": args.seeds, "l1": l1_of, "betas_grid": list(BETAS),
           "enns": {"mnist5k": {"image": metas["img-m5k-a"], "stats": metas["stats-m5k"]},
                    "digits": {"image": metas["img-digits"], "stats": sd_meta}},
           "wall_s": round(time.time() - t, 1), "runs": rows}
    (RESULTS / "enn_eval.json").write_text(json.dumps(doc))
    print(f"{len(rows)} runs in {doc['wall_s']} s", flush=True)


def cmd_explain(args) -> None:
    """Grad-CAM (captum) on the ENN's last conv layer for a trained 784-128-10 MLP's first layer,
    mapped back to weight space; then the top-k% of that map as a subnetwork vs a random mask of
    the same size (and the top-k% by magnitude), each kept on the trained weights and retrained
    from the same init with the mask fixed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from automl.guidance.enn import accuracy, build_mlp, gradcam, guided_fit, load_enn, weight_matrices
    from automl.guidance.recommender import load_zoo
    from automl.training.data import load_dataset

    zoo = load_zoo()
    meta = next(e for e in zoo["enns"] if e["name"] == "img-m5k-a")
    enn = load_enn(zoo["dir"] / meta["file"])[0]
    data = load_dataset("mnist5k")
    dims, k = (784, 128, 10), args.keep
    rows = []
    cams = []
    for seed in range(args.seeds):
        init = build_mlp(dims, seed=seed)
        model = build_mlp(dims, seed=seed)
        model.load_state_dict(init.state_dict())
        guided_fit(model, data, None, 0.0, epochs=EVAL_EPOCHS, seed=seed)
        mats = [w.detach() for w in weight_matrices(model)]
        prepared = [enn.prepare(w) for w in mats]
        cam_w = gradcam(enn, model, layer=0)  # Grad-CAM in weight space
        cams.append(cam_w.numpy())
        w0 = mats[0]
        n_keep = int(round(k * w0.numel()))
        gen = torch.Generator().manual_seed(seed)
        masks = {"gradcam": torch.zeros(w0.numel(), dtype=torch.bool), "random": torch.zeros(w0.numel(), dtype=torch.bool),
                 "magnitude": torch.zeros(w0.numel(), dtype=torch.bool)}
        masks["gradcam"][torch.argsort(cam_w.flatten() + 1e-9 * w0.abs().flatten(), descending=True)[:n_keep]] = True
        masks["random"][torch.randperm(w0.numel(), generator=gen)[:n_keep]] = True
        masks["magnitude"][torch.argsort(w0.abs().flatten(), descending=True)[:n_keep]] = True
        for name, mask in masks.items():
            mask = mask.view_as(w0)
            pruned = build_mlp(dims, seed=seed)
            pruned.load_state_dict(model.state_dict())
            with torch.no_grad():
                weight_matrices(pruned)[0].mul_(mask)
            kept_acc = accuracy(pruned, data.x_test.flatten(1), data.y_test)[1]
            ticket = build_mlp(dims, seed=seed)
            ticket.load_state_dict(init.state_dict())
            w = weight_matrices(ticket)[0]
            with torch.no_grad():
                w.mul_(mask)
            w.register_hook(lambda g, m=mask: g * m)  # the mask stays fixed while retraining
            retrained = guided_fit(ticket, data, None, 0.0, epochs=EVAL_EPOCHS, seed=seed).final["test_acc"]
            rows.append({"seed": seed, "mask": name, "keep": k, "pruned_test_acc": kept_acc, "ticket_test_acc": retrained})
        if seed == 0:
            fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
            ax[0].imshow(prepared[0][0, 0].numpy(), cmap="coolwarm", aspect="auto")
            ax[0].set_title("ENN input: layer 1 (128x784) z-scored, 0.15 per side")
            ax[1].imshow(cam_w.numpy(), cmap="magma", aspect="auto")
            ax[1].set_title("Grad-CAM mapped back to weight space")
            ax[2].imshow(cam_w.numpy().sum(0).reshape(28, 28), cmap="magma")
            ax[2].set_title("summed over hidden units: input pixels")
            for a in ax:
                a.set_xticks([]), a.set_yticks([])
            fig.tight_layout()
            fig.savefig(RESULTS / "enn_gradcam.png", dpi=110)
            plt.close(fig)
    doc = {"keep": k, "seeds": args.seeds, "arch": "mlp:784-128-10", "enn": "img-m5k-a", "rows": rows,
           "cam_overlap_with_magnitude": float(np.mean([
               len(set(np.argsort(-c.flatten())[: int(k * c.size)]) & set(np.argsort(-np.abs(mats[0].numpy()).flatten())[: int(k * c.size)]))
               / int(k * c.size) for c in cams[-1:]]))}
    (RESULTS / "enn_explain.json").write_text(json.dumps(doc, indent=1))
    for name in ("gradcam", "random", "magnitude"):
        sel = [r for r in rows if r["mask"] == name]
        print(name, "pruned", np.mean([r["pruned_test_acc"] for r in sel]), "ticket", np.mean([r["ticket_test_acc"] for r in sel]))


SWEEP_BETAS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def cmd_sweep(args) -> None:
    """Dose-response: test accuracy of 784-128-10 on mnist5k guided by img-m5k-a at each β,
    10 seeds, the evaluation's epochs."""
    from automl.guidance.recommender import load_zoo

    zoo = load_zoo()
    meta = next(e for e in zoo["enns"] if e["name"] == "img-m5k-a")
    f = str(zoo["dir"] / meta["file"])
    jobs = [("enn", (784, 128, 10), "mnist5k", f, b, 0.0, s, EVAL_EPOCHS) for b in SWEEP_BETAS for s in range(args.seeds)]
    rows = _pool(_eval_run, jobs, args.jobs)
    (RESULTS / "enn_sweep.json").write_text(json.dumps({"enn": "img-m5k-a", "arch": "784-128-10", "rows": rows}))
    for b in SWEEP_BETAS:
        print(b, np.mean([r["test_acc"] for r in rows if r["beta"] == b]))


def cmd_confirm(args) -> None:
    """The sweep's best β (chosen on seeds 0..9) against plain backprop on fresh seeds 100..:
    a confirmatory test that does not reuse the seeds the β was picked on."""
    from automl.guidance.recommender import load_zoo

    sweep = json.loads((RESULTS / "enn_sweep.json").read_text())
    betas = sorted({r["beta"] for r in sweep["rows"]} - {0.0})
    best = max(betas, key=lambda b: np.mean([r["test_acc"] for r in sweep["rows"] if r["beta"] == b]))
    zoo = load_zoo()
    f = str(zoo["dir"] / next(e for e in zoo["enns"] if e["name"] == sweep["enn"])["file"])
    seeds = range(100, 100 + args.seeds)
    jobs = [("enn", (784, 128, 10), "mnist5k", f, b, 0.0, s, EVAL_EPOCHS) for b in (0.0, best) for s in seeds]
    sweep["confirm"] = {"beta": best, "seeds": list(seeds), "rows": _pool(_eval_run, jobs, args.jobs)}
    (RESULTS / "enn_sweep.json").write_text(json.dumps(sweep))
    for b in (0.0, best):
        print(b, np.mean([r["test_acc"] for r in sweep["confirm"]["rows"] if r["beta"] == b]))


def _paired(a, b):
    from scipy.stats import ttest_rel, wilcoxon

    a, b = np.asarray(a), np.asarray(b)
    if np.allclose(a, b):
        return 1.0, 1.0
    t = float(ttest_rel(a, b).pvalue)
    try:
        w = float(wilcoxon(a, b).pvalue)
    except ValueError:
        w = float("nan")
    return t, w


def cmd_report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from automl.guidance.recommender import load_zoo

    ev = json.loads((RESULTS / "enn_eval.json").read_text())
    zoo = load_zoo()
    runs = ev["runs"]
    archs = sorted({r["arch"] for r in runs}, key=lambda a: (a.split("-")[0] != "784", a))
    L = ["# Guidance networks (ENN): guided training, the zoo, the recommender", "",
         "Issue 7. Machine: 2-core x86_64 CPU, no GPU. Reproduce with:", "",
         "```", "python benchmarks/enn_study.py zoo       # the K=6 zoo (automl enn train does zoo+gains)",
         "python benchmarks/enn_study.py gains     # gains of every ENN on 12 architectures, the recommender",
         "python benchmarks/enn_study.py evaluate  # guided training vs the baselines",
         "python benchmarks/enn_study.py sweep     # β dose-response",
         "python benchmarks/enn_study.py confirm   # the sweep's best β on fresh seeds", "python benchmarks/enn_study.py explain",
         "python benchmarks/enn_study.py report", "```", ""]
    L += ["## 1. Guided training against the baselines", "",
          f"MLPs trained {ev['epochs']} epochs with SGD (lr 0.05, momentum 0.9, batch 64), seeds 0..{ev['seeds'] - 1}, "
          "the same seed giving the same init and batch order in every arm. Test accuracy (%) mean ± sd; "
          "Δ = arm − plain in points with the paired t-test and Wilcoxon p; gap = train − test accuracy (points). "
          f"L1 λ chosen on tuning seeds: {ev['l1']}. β of each ENN chosen on tuning seeds from {ev['betas_grid']}: "
          f"image ENN {ev['enns']['mnist5k']['image']['beta']} (mnist5k), {ev['enns']['digits']['image']['beta']} (digits); "
          f"statistics ENN {ev['enns']['mnist5k']['stats']['beta']} (mnist5k), {ev['enns']['digits']['stats']['beta']} (digits).", "",
          "| architecture | arm | test acc | Δ vs plain | p (t) | p (Wilcoxon) | gap |", "|---|---|---|---|---|---|---|"]
    summary = {}
    for arch in archs:
        plain = sorted((r for r in runs if r["arch"] == arch and r["arm"] == "plain"), key=lambda r: r["seed"])
        for arm in ARMS:
            sel = sorted((r for r in runs if r["arch"] == arch and r["arm"] == arm), key=lambda r: r["seed"])
            acc = np.array([r["test_acc"] for r in sel]) * 100
            gap = np.mean([(r["train_acc"] - r["test_acc"]) * 100 for r in sel])
            if arm == "plain":
                L.append(f"| {arch} | plain | {acc.mean():.2f} ± {acc.std(ddof=1):.2f} | | | | {gap:.2f} |")
                continue
            base = np.array([r["test_acc"] for r in plain]) * 100
            pt, pw = _paired(acc, base)
            summary.setdefault(arm, []).append((arch, float((acc - base).mean()), pt))
            L.append(f"| {arch} | {arm} | {acc.mean():.2f} ± {acc.std(ddof=1):.2f} | {(acc - base).mean():+.2f} | {pt:.3g} | {pw:.3g} | {gap:.2f} |")
    L += ["", "Pooled over the architectures of each dataset (paired over architecture × seed):", "",
          "| dataset | arm | Δ vs plain (points) | p (t) | p (Wilcoxon) |", "|---|---|---|---|---|"]
    pooled = {}
    for ds in ("mnist5k", "digits"):
        for arm in ARMS[1:]:
            a = np.array([r["test_acc"] for r in sorted((r for r in runs if r["dataset"] == ds and r["arm"] == arm), key=lambda r: (r["arch"], r["seed"]))])
            b = np.array([r["test_acc"] for r in sorted((r for r in runs if r["dataset"] == ds and r["arm"] == "plain"), key=lambda r: (r["arch"], r["seed"]))])
            pt, pw = _paired(a, b)
            pooled[(ds, arm)] = (100 * (a - b).mean(), pt)
            L.append(f"| {ds} | {arm} | {100 * (a - b).mean():+.2f} | {pt:.3g} | {pw:.3g} |")
    sig = sorted({f"{arm} on {arch}" for arm, cells in summary.items() for arch, d, p in cells if p < 0.05 and d > 0})
    sig_pooled = sorted(f"{arm} on {ds} ({d:+.2f}, p={p:.2g})" for (ds, arm), (d, p) in pooled.items() if p < 0.05 and d > 0)
    enn_sig = [x for x in sig + sig_pooled if x.startswith(("enn ", "stats "))]
    L += ["", "**Reading.** Significant gains over plain backprop (paired t, p < 0.05): per architecture "
          f"{', '.join(sig) or 'none'}; pooled {', '.join(sig_pooled) or 'none'}. "
          + ("A guidance network gives a significant gain here, and β = 0 removes it by construction (it is plain backprop, "
             "bit for bit)." if enn_sig else
             "No guidance-network arm (image or statistics) is significant on any architecture or pooled: the anchor's "
             "+2.8 points over plain backprop is not reproduced. β = 0 is plain backprop bit for bit (Δ = 0 exactly).")]
    # gradient ratio by epoch
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    for arch in archs:
        sel = [r for r in runs if r["arch"] == arch and r["arm"] == "enn"]
        ax[0].plot(range(1, ev["epochs"] + 1), np.mean([r["grad_ratio"] for r in sel], axis=0), label=arch)
        sel = [r for r in runs if r["arch"] == arch and r["arm"] == "stats"]
        ax[1].plot(range(1, ev["epochs"] + 1), np.mean([r["grad_ratio"] for r in sel], axis=0), label=arch)
    for a, t in zip(ax, ("image ENN", "statistics ENN")):
        a.set_yscale("log"), a.set_xlabel("epoch"), a.set_ylabel("‖β∇ENN‖ / ‖∇CE‖"), a.set_title(t)
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "enn_grad_ratio.png", dpi=110)
    plt.close(fig)
    ratio_rows = []
    for arch in archs:
        g = np.mean([r["grad_ratio"] for r in runs if r["arch"] == arch and r["arm"] == "enn"], axis=0)
        ratio_rows.append(f"| {arch} | {g[0]:.3g} | {g[len(g) // 2]:.3g} | {g[-1]:.3g} |")
    L += ["", "Ratio of the guidance and cross-entropy gradient norms (image ENN, mean over seeds) by training stage "
          "(`enn_grad_ratio.png`):", "", "| architecture | epoch 1 | middle | last |", "|---|---|---|---|", *ratio_rows]
    # zoo
    L += ["", "## 2. The zoo (K = %d)" % len(zoo["enns"]), "",
          "Each ENN learns by value learning from real runs (state = weights after an epoch, return = final validation "
          "accuracy; learning rates 1e-3..0.5, default or He init, momentum 0 or 0.9): 60 plain runs, then 30 runs guided by "
          "the ENN itself with β in {0, 10, 100}, refitting on all states. R² is on whole runs held out.", "",
          "| ENN | kind | trained on | β | R² held out (round 0 → 1) | mean return |", "|---|---|---|---|---|---|"]
    for e in zoo["enns"]:
        r2s = " → ".join(f"{r['r2_holdout']:.3f}" for r in e["fit"])
        L.append(f"| {e['name']} | {e['kind']} {e['channels'] or ''} | {e['dataset']}: {', '.join(a[4:] for a in e['pool'])} | {e['beta']} | "
                 f"{r2s} | {e['returns_mean']:.3f} |")
    if zoo.get("gains"):
        g = zoo["gains"]
        names = [e["name"] for e in zoo["enns"]]
        L += ["", f"Measured gain (points of test accuracy over plain backprop, {g['epochs']} epochs, seeds {g['seeds']}):", "",
              "| architecture | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for arch, cells in g["table"].items():
            L.append(f"| {arch[4:]} | " + " | ".join(f"{cells[n]['mean']:+.2f} ± {cells[n]['sd']:.2f}" for n in names) + " |")
    if zoo.get("recommender"):
        lo = zoo["recommender"]["loao"]
        L += ["", "## 3. The recommender", "",
              "XGBoost (10 bootstrap models; their spread is the uncertainty) over ENN features (kind, width, β, held-out R², "
              "mean return, pool size), architecture features (input size, depth, widths, parameters) and coverage (same input, "
              "widths and depth inside the ENN's pool, distance). Judged leaving each architecture out:", "",
              f"- mean Spearman (predicted vs measured gain across the ENNs of a held-out architecture): {lo['mean_spearman']:.3f}",
              f"- pooled Spearman over all held-out pairs: {lo['pooled_spearman']:.3f}",
              f"- top-1 pick within 0.3 points of the best ENN: {100 * lo['top1_within_0.3']:.0f}% of held-out architectures (target ≥ 70%)",
              f"- median top-1 regret: {lo['median_regret']:.2f} points", "",
              "| held-out architecture | pick | its gain | best gain | regret | Spearman |", "|---|---|---|---|---|---|"]
        for a in lo["per_arch"]:
            sp = "n/a" if a["spearman"] is None else f"{a['spearman']:.2f}"
            L.append(f"| {a['arch'][4:]} | {a['pick']} | {a['pick_gain']:+.2f} | {a['best_gain']:+.2f} | {a['regret']:.2f} | {sp} |")
    sw = RESULTS / "enn_sweep.json"
    if sw.is_file():
        d = json.loads(sw.read_text())
        base = np.array([r["test_acc"] for r in sorted((r for r in d["rows"] if r["beta"] == 0.0), key=lambda r: r["seed"])])
        L += ["", f"β sweep: {d['arch']} on mnist5k guided by `{d['enn']}`, seeds 0..{len(base) - 1}, {EVAL_EPOCHS} epochs "
              "(β = 0 is plain backprop):", "", "| β | test acc | Δ vs β = 0 | p (t) | ratio, epoch 1 | ratio, last |", "|---|---|---|---|---|---|"]
        for b in sorted({r["beta"] for r in d["rows"]}):
            sel = sorted((r for r in d["rows"] if r["beta"] == b), key=lambda r: r["seed"])
            a = np.array([r["test_acc"] for r in sel])
            g = np.mean([r["grad_ratio"] for r in sel], axis=0)
            L.append(f"| {b:g} | {100 * a.mean():.2f} ± {100 * a.std(ddof=1):.2f} | {100 * (a - base).mean():+.2f} | "
                     f"{_paired(a, base)[0]:.3g} | {g[0]:.3g} | {g[-1]:.3g} |")
        n_b = len({r["beta"] for r in d["rows"]}) - 1
        L.append(f"\nThese p are uncorrected; {n_b} β are compared with β = 0 on the same seeds (Bonferroni: p < {0.05 / n_b:.2g}).")
        if "confirm" in d:
            c = d["confirm"]
            key = lambda r: r["seed"]  # noqa: E731
            a = np.array([r["test_acc"] for r in sorted((r for r in c["rows"] if r["beta"] == c["beta"]), key=key)])
            b0 = np.array([r["test_acc"] for r in sorted((r for r in c["rows"] if r["beta"] == 0.0), key=key)])
            pt, pw = _paired(a, b0)
            L.append(f"Confirmation on fresh seeds {c['seeds'][0]}..{c['seeds'][-1]} of the sweep's best β = {c['beta']:g}: "
                     f"{100 * a.mean():.2f} ± {100 * a.std(ddof=1):.2f} vs plain {100 * b0.mean():.2f} ± {100 * b0.std(ddof=1):.2f}, "
                     f"Δ {100 * (a - b0).mean():+.2f} points, paired t p = {pt:.3g}, Wilcoxon p = {pw:.3g}.")
    ex = RESULTS / "enn_explain.json"
    if ex.is_file():
        d = json.loads(ex.read_text())
        L += ["", "## 4. What the ENN looks at (Grad-CAM)", "",
              f"captum's LayerGradCam on the last conv layer of `{d['enn']}`, for the first layer of trained {d['arch'][4:]} MLPs, "
              "upsampled back to the 128×784 weight matrix (`enn_gradcam.png`). The top "
              f"{100 * d['keep']:.0f}% of first-layer weights by that map, against a random mask and the top weights by magnitude "
              f"(seeds 0..{d['seeds'] - 1}): 'kept' = the trained net with the other first-layer weights zeroed; 'ticket' = "
              f"retrained {EVAL_EPOCHS} epochs from the same init with the mask fixed.", "",
              "| mask | kept: test acc | ticket: test acc |", "|---|---|---|"]
        for name in ("gradcam", "random", "magnitude"):
            sel = [r for r in d["rows"] if r["mask"] == name]
            a = np.array([r["pruned_test_acc"] for r in sel]) * 100
            b = np.array([r["ticket_test_acc"] for r in sel]) * 100
            L.append(f"| {name} | {a.mean():.2f} ± {a.std(ddof=1):.2f} | {b.mean():.2f} ± {b.std(ddof=1):.2f} |")
        by = {n: np.array([r["ticket_test_acc"] for r in sorted((r for r in d["rows"] if r["mask"] == n), key=lambda r: r["seed"])])
              for n in ("gradcam", "random", "magnitude")}
        L.append(f"\nTicket, Grad-CAM vs random: {100 * (by['gradcam'] - by['random']).mean():+.2f} points, paired t p = "
                 f"{_paired(by['gradcam'], by['random'])[0]:.3g}; Grad-CAM vs magnitude: "
                 f"{100 * (by['gradcam'] - by['magnitude']).mean():+.2f}, p = {_paired(by['gradcam'], by['magnitude'])[0]:.3g}.")
        L.append(f"\nOverlap of the Grad-CAM top {100 * d['keep']:.0f}% with the magnitude top {100 * d['keep']:.0f}% (last seed): "
                 f"{100 * d['cam_overlap_with_magnitude']:.0f}%.")
    (RESULTS / "enn.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    z = sub.add_parser("zoo")
    z.add_argument("--jobs", type=int, default=2)
    z.add_argument("--runs", type=int, default=60)
    z.add_argument("--guided-runs", type=int, default=30)
    g = sub.add_parser("gains")
    g.add_argument("--jobs", type=int, default=2)
    g.add_argument("--seeds", type=int, default=15)
    g.add_argument("--resume", action="store_true", help="keep the seeds gains.json holds; run only the others")
    e = sub.add_parser("evaluate")
    e.add_argument("--jobs", type=int, default=2)
    e.add_argument("--seeds", type=int, default=10)
    x = sub.add_parser("explain")
    x.add_argument("--seeds", type=int, default=5)
    x.add_argument("--keep", type=float, default=0.2)
    w = sub.add_parser("sweep")
    w.add_argument("--jobs", type=int, default=2)
    w.add_argument("--seeds", type=int, default=10)
    c = sub.add_parser("confirm")
    c.add_argument("--jobs", type=int, default=2)
    c.add_argument("--seeds", type=int, default=10)
    sub.add_parser("report")
    args = ap.parse_args(argv)
    {"zoo": cmd_zoo, "gains": cmd_gains, "evaluate": cmd_evaluate, "explain": cmd_explain, "sweep": cmd_sweep, "confirm": cmd_confirm, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main(sys.argv[1:])
