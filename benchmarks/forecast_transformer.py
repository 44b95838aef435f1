"""A small transformer forecaster, measured against the shipped gradient-boosted one (issue 21: "a
transformer of a few layers, or gradient-boosted quantile models over features of the prefix against
the population: measure both and keep what wins").

    python benchmarks/forecast_transformer.py --studies 300 --holdout 60 --trials 150 --epochs 12 --replay-seeds 5

Both models read the same rows of the same synthetic studies (``train_forecaster.py``'s seeds, so
the shipped model was trained on exactly these): the boosted model reads the 18 features of the
prefix against the population (:mod:`automl.forecast.features`); the transformer reads those
features as one token and the trial's own prefix as the others (up to 16 epochs, evenly spaced, each
as its value in the study's z units, its share of the budget and its log epoch), and predicts the
same 8 quantiles of the final z value (increasing by construction), trained on the pinball loss.

Measured: calibration on held-out synthetic studies; P(beat the best finished trial) on real curves
(the held-out half of the banks' tasks and the unseen banks, read as ``forecast_report.py`` reads
them; Brier and log loss); whether a worse current value ever reads as likelier to win; decision
time at 200 finished trials; and with ``--replay-seeds`` the forecast pruner with each model, its
``risk`` for the transformer chosen on the tuning half by ``tune_signal.py``'s rule. Writes
``benchmarks/results/forecast_transformer.{md,json}`` (``_monotone`` with ``--monotone``). Neither
variant is shipped (see the reports): the plain one prunes cheaper but a worse value can read
likelier to win; the monotone one is better calibrated but not a cheaper pruner.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from automl.forecast.features import NAMES, Z_CLIP, features, to_z
from automl.forecast.model import QUANTILES, Forecast, frame_from_curves, load_forecaster, p_below, training_rows
from automl.forecast.prior import sample_study
from sequence_forecaster import C_IDX, V_IDX, VALUE, SequenceForecaster, tokens

RESULTS = Path(__file__).resolve().parent / "results"
BANKS = Path(__file__).resolve().parent / "banks"
def _study_rows(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list]:
    """The rows ``train_forecaster.py`` trains on for one study seed, with each row's prefix
    (``(z values, budget)``)."""
    seed, n_trials = args
    rng = np.random.default_rng([seed, 7])
    study = sample_study(rng, n_trials)
    pre: list = []
    X, y = training_rows(study.curves, study.budgets, rng, prefixes=pre)
    return X, y, pre


def rows(seeds: range, n_trials: int, jobs: int) -> tuple[np.ndarray, np.ndarray, list]:
    """``(X, y, prefixes)`` of the studies drawn with ``seeds``."""
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parts = list(pool.map(_study_rows, [(s, n_trials) for s in seeds]))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), [x for p in parts for x in p[2]]


class Standardise:
    """Features as a network reads them: missing values as 0 (with a flag each where ``flags``),
    standardised with the training rows' mean and spread (an increasing map of each column)."""

    def __init__(self, X: np.ndarray, flags: bool = True) -> None:
        self.flags = flags
        Z = self._raw(X)
        self.mean, self.std = np.nanmean(Z, 0), np.nanstd(Z, 0) + 1e-6

    def _raw(self, X: np.ndarray) -> np.ndarray:
        miss = np.isnan(X)
        return np.concatenate([np.where(miss, 0.0, X), miss], axis=1) if self.flags else X

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = (self._raw(np.atleast_2d(X)) - self.mean) / self.std
        return np.where(np.isnan(Z), 0.0, Z).astype(np.float32)


class Inputs:
    """What each network reads of a row and its prefix. Plain: every feature as the study token
    and the whole prefix as tokens. Monotone: the features the current value moves apart
    (:data:`VALUE`, standardised, missing as the mean), the rest as the study token, and the prefix
    before the current epoch as tokens."""

    def __init__(self, X: np.ndarray, monotone: bool) -> None:
        self.monotone = monotone
        if monotone:
            self.ctx, self.val = Standardise(X[:, C_IDX]), Standardise(X[:, V_IDX], flags=False)
        else:
            self.ctx = Standardise(X)

    def __call__(self, X: np.ndarray, prefixes: list) -> tuple[np.ndarray, ...]:
        X = np.atleast_2d(X)
        toks = [tokens(z[:-1] if self.monotone else z, b) for z, b in prefixes]
        T = np.stack([t for t, _ in toks])
        M = np.stack([m for _, m in toks])
        if self.monotone:
            return self.ctx(X[:, C_IDX]), self.val(X[:, V_IDX]), T, M
        return self.ctx(X), T, M


def build(d: int = 64, layers: int = 2, heads: int = 4, monotone: bool = False):
    import torch
    from torch import nn

    def encoder(m: nn.Module, n_study: int) -> None:
        """The parts both networks share: the study token's and the prefix tokens' embeddings, a
        pre-norm transformer encoder and its output norm (attribute names as the numpy reader expects)."""
        m.study = nn.Linear(n_study, d)
        m.tok = nn.Linear(3, d)
        m.kind = nn.Parameter(torch.zeros(2, d))
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        m.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        m.norm = nn.LayerNorm(d)

    class MonotoneForecaster(nn.Module):
        """Monotone in the trial's current value by construction. The transformer reads only what
        the current value does not move: the study's other features as one token, the prefix before
        the current epoch as the others. The value-moved features go through a network with
        non-negative weights and increasing activations (each of its outputs never falls as they
        rise), mixed into every quantile with non-negative weights the transformer sets:
        ``q_1 = a_0 + sum_h w_0h * m_h``, ``q_k = q_(k-1) + softplus(a_k + sum_h w_kh * m_h)``."""

        def __init__(self, hidden: int = 64, basis: int = 32) -> None:
            super().__init__()
            encoder(self, 2 * len(C_IDX))
            self.a = nn.Linear(d, len(QUANTILES))
            self.w = nn.Linear(d, len(QUANTILES) * basis)
            self.m1 = nn.Parameter(torch.randn(len(VALUE), hidden) * 0.3)
            self.b1 = nn.Parameter(torch.zeros(hidden))
            self.m2 = nn.Parameter(torch.randn(hidden, basis) * 0.3)
            self.b2 = nn.Parameter(torch.zeros(basis))
            self.basis = basis

        def forward(self, study, value, tok, mask):
            sp = nn.functional.softplus
            h = torch.cat([(self.study(study) + self.kind[0])[:, None], self.tok(tok) + self.kind[1]], dim=1)
            pad = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
            c = self.norm(self.enc(h, src_key_padding_mask=pad)[:, 0])
            m = torch.tanh(torch.tanh(value @ sp(self.m1) + self.b1) @ sp(self.m2) + self.b2)  # (B, basis), increasing
            w = sp(self.w(c)).view(-1, len(QUANTILES), self.basis)
            o = self.a(c) + (w * m[:, None, :]).sum(-1)
            return torch.cat([o[:, :1], o[:, :1] + torch.cumsum(sp(o[:, 1:]), dim=1)], dim=1)

    if monotone:
        return MonotoneForecaster()

    class TinyForecaster(nn.Module):
        """The study's features as one token, the prefix as the others; a pre-norm transformer
        encoder; the study token's output as 8 increasing quantiles (first + cumulative softplus)."""

        def __init__(self) -> None:
            super().__init__()
            encoder(self, 2 * len(NAMES))
            self.head = nn.Linear(d, len(QUANTILES))

        def forward(self, study, tok, mask):
            h = torch.cat([(self.study(study) + self.kind[0])[:, None], self.tok(tok) + self.kind[1]], dim=1)
            pad = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
            o = self.head(self.norm(self.enc(h, src_key_padding_mask=pad)[:, 0]))
            return torch.cat([o[:, :1], o[:, :1] + torch.cumsum(nn.functional.softplus(o[:, 1:]), dim=1)], dim=1)

    return TinyForecaster()


def train(X, y, prefixes, *, monotone: bool, epochs: int, seed: int, batch: int = 512, lr: float = 2e-3, log=print):
    import torch

    torch.manual_seed(seed)
    inputs = Inputs(X, monotone)
    parts = [torch.from_numpy(a) for a in inputs(X, prefixes)]
    yt = torch.from_numpy(np.clip(y, -Z_CLIP, Z_CLIP).astype(np.float32))
    a = torch.tensor(QUANTILES, dtype=torch.float32)
    net = build(monotone=monotone)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(yt) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        total, t0 = 0.0, time.time()
        net.train()
        for i in range(0, len(yt), batch):
            j = perm[i:i + batch]
            q = net(*(x[j] for x in parts))
            r = yt[j, None] - q
            loss = torch.maximum(a * r, (a - 1) * r).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(j)
        log(f"epoch {ep + 1}/{epochs}: pinball {total / len(yt):.4f} ({time.time() - t0:.0f} s)", flush=True)
    net.eval()
    return net, inputs


class TransformerForecaster:
    """The trained network behind the shipped forecaster's ``forecast`` call (so the pruner can
    replay with it)."""

    def __init__(self, net, inputs: Inputs) -> None:
        self.net, self.inputs = net, inputs

    def predict_z(self, X: np.ndarray, prefixes: list) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(X), 4096):
                parts = self.inputs(X[i:i + 4096], prefixes[i:i + 4096])
                out.append(self.net(*(torch.from_numpy(a) for a in parts)).numpy().astype(float))
        return np.concatenate(out) if out else np.zeros((0, len(QUANTILES)))

    def forecast(self, own: np.ndarray, budget: int, frame, epoch=None) -> Forecast:
        row, best, span = features(own, budget, frame, epoch)
        return Forecast(self.predict_z(row[None, :], [(to_z(own, best, span), budget)])[0], best, span)


def export(net, inputs: Inputs, seed: int) -> SequenceForecaster:
    """The trained network as the numpy :class:`SequenceForecaster`."""
    meta = {"features": list(NAMES), "value": list(VALUE), "t_max": 16, "quantiles": list(QUANTILES),
            "layers": len(net.enc.layers), "heads": net.enc.layers[0].self_attn.num_heads, "seed": seed,
            "head": "monotone" if inputs.monotone else "plain", "ctx_mean": inputs.ctx.mean, "ctx_std": inputs.ctx.std}
    if inputs.monotone:
        meta.update(val_mean=inputs.val.mean, val_std=inputs.val.std)
    weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    return SequenceForecaster(weights, meta)


class EnvelopedForecaster:
    """The plain network made monotone in the trial's value at decision time
    (:meth:`SequenceForecaster.enveloped`)."""

    def __init__(self, seq: SequenceForecaster) -> None:
        self.seq = seq

    def predict_z(self, X: np.ndarray, prefixes: list) -> np.ndarray:
        return self.seq.predict_z(X, prefixes)

    def forecast(self, own: np.ndarray, budget: int, frame, epoch=None):
        return self.seq.enveloped(own, budget, frame, epoch)


def pinball(q: np.ndarray, y: np.ndarray) -> float:
    a = np.asarray(QUANTILES)
    r = np.clip(y, -Z_CLIP, Z_CLIP)[:, None] - q
    return float(np.mean(np.maximum(a * r, (a - 1) * r)))


def scores(p: np.ndarray, hit: np.ndarray) -> dict:
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    return {"n": int(len(p)), "base_rate": float(hit.mean()), "brier": float(np.mean((p - hit) ** 2)),
            "log_loss": float(-np.mean(hit * np.log(pc) + (1 - hit) * np.log(1 - pc))),
            # what a pruner at a small risk acts on: how often a trial that went on to win read below it
            "winners_below_0.01": float(np.mean(p[hit == 1] < 0.01)) if hit.any() else math.nan,
            "losers_below_0.01": float(np.mean(p[hit == 0] < 0.01)) if (hit == 0).any() else math.nan}


def synthetic(models: dict, X, y, prefixes) -> dict:
    out = {}
    hit = (y < 0).astype(float)
    for name, m in models.items():
        q = m.predict_z(X) if name == "xgboost" else m.predict_z(X, prefixes)
        p = np.array([p_below(r) for r in q])
        out[name] = {"coverage": {f"{a:g}": float(np.mean(y <= q[:, i])) for i, a in enumerate(QUANTILES)},
                     "pinball": pinball(q, y), **scores(p, hit)}
    return out


def groups(seed_banks: list[str], unseen: list[str]) -> dict[str, dict]:
    from automl.bench.bank import read_bank, runs_by_task

    tasks: dict = {}
    for b in seed_banks:
        tasks.update(runs_by_task(read_bank(b)))
    names = sorted(tasks)
    out = {"tuning half": {t: tasks[t] for t in names[0::2]}, "held-out half": {t: tasks[t] for t in names[1::2]}}
    for pattern in unseen:
        out[f"unseen {pattern}"] = {t: r for b in sorted(glob.glob(pattern)) for t, r in runs_by_task(read_bank(b)).items()}
    return out


def real(models: dict, tasks: dict, seeds: int, trials: int) -> dict:
    """P(beat the best finished trial) on real studies read as the forecaster is trained
    (:func:`automl.bench.replay.sequential_reads`), and how often a worse current value (the
    last epoch 0.1 of the study's scale worse) reads as likelier to win."""
    from automl.bench.replay import sequential_reads

    P = {name: [] for name in models}
    up = {name: 0 for name in models}
    hits, checked = [], 0
    for curves, done, i, e in sequential_reads(tasks, seeds, trials, min_done=3, per_trial=3):
        c = curves[i]
        frame = frame_from_curves([curves[j] for j in done], [len(curves[j]) for j in done], e, len(c),
                                  others=[curves[j] for j in range(i) if j not in done])
        best = min(curves[j][-1] for j in done)
        hits.append(float(np.isfinite(c[-1]) and c[-1] < best))
        own = c[:e]
        worse = None
        if e >= 2:
            _, _, span = features(own, len(c), frame)
            worse = own.copy()
            worse[-1] += 0.1 * span
            checked += 1
        for name, m in models.items():
            p = m.forecast(own, len(c), frame).p_beat
            P[name].append(p)
            if worse is not None and m.forecast(worse, len(c), frame).p_beat > p + 1e-12:
                up[name] += 1
    y = np.asarray(hits)
    return {name: {**scores(np.asarray(P[name]), y), "worse_value_likelier": up[name] / max(checked, 1)}
            for name in models}


def latency(models: dict, n_finished: int = 200, calls: int = 300) -> dict:
    rng = np.random.default_rng(5)
    study = sample_study(rng, n_finished + 1)
    curves = [c for c in study.curves if np.isfinite(c[-1])][:n_finished]
    c, b = curves[-1], len(curves[-1])
    e = max(2, b // 3)
    frame = frame_from_curves(curves[:-1], [len(x) for x in curves[:-1]], e, b)
    out = {}
    for name, m in models.items():
        m.forecast(c[:e], b, frame)
        ts = []
        for _ in range(calls):
            t0 = time.perf_counter()
            m.forecast(c[:e], b, frame)
            ts.append(time.perf_counter() - t0)
        out[name] = {"median_ms": 1e3 * float(np.median(ts)), "p95_ms": 1e3 * float(np.quantile(ts, 0.95)),
                     "n_finished": len(curves) - 1}
    return out


def replay_with(model, tasks: dict, policy_fields: dict, seeds: int, trials: int, jobs: int) -> dict:
    """The forecast pruner replayed with ``model`` behind it (the workers fork with it in place)."""
    import automl.forecast.model as fm
    from automl.bench.replay import replay
    from automl.decision import Policy

    shipped = fm.load_forecaster
    fm.load_forecaster = lambda path=None: model  # type: ignore[assignment]
    try:
        doc = replay(tasks, ["none", "forecast"], seeds=seeds, trials=trials, jobs=jobs, policy=Policy(rule="forecast", **policy_fields))
    finally:
        fm.load_forecaster = shipped
    return doc["summary"]["forecast"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=300)
    ap.add_argument("--holdout", type=int, default=60)
    ap.add_argument("--trials", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=12, help="passes over the training rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--real-seeds", type=int, default=3)
    ap.add_argument("--monotone", action="store_true", help="the variant monotone in the trial's value by construction")
    ap.add_argument("--envelope", action="store_true", help="the plain network, made monotone in the trial's value at "
                    "decision time (SequenceForecaster.enveloped)")
    ap.add_argument("--save", metavar="PATH", help="write the numpy model there (.npz; with --monotone or --envelope)")
    ap.add_argument("--replay-seeds", type=int, default=0, help="0: no replay")
    ap.add_argument("--risks", type=float, nargs="+", default=[0.002, 0.005, 0.01, 0.02],
                    help="risks tried for the transformer on the tuning half")
    args = ap.parse_args()
    if args.envelope and args.monotone:
        ap.error("--envelope makes the plain network monotone; --monotone is monotone by construction: one of them")
    import torch

    torch.set_num_threads(args.jobs)
    t0 = time.time()
    base = args.seed * 1_000_000
    X, y, pre = rows(range(base, base + args.studies), args.trials, args.jobs)
    Xh, yh, preh = rows(range(base + args.studies, base + args.studies + args.holdout), args.trials, args.jobs)
    t_rows = time.time() - t0
    print(f"{len(y)} training rows, {len(yh)} held-out rows ({t_rows:.0f} s)", flush=True)
    net, inputs = train(X, y, pre, monotone=args.monotone, epochs=args.epochs, seed=args.seed)
    t_train = time.time() - t0 - t_rows
    torch.set_num_threads(1)
    seq = TransformerForecaster(net, inputs)
    if args.monotone or args.envelope:  # measured as it would ship: the numpy inference, checked against torch's
        seq = export(net, inputs, args.seed)
        gap = float(np.abs(seq.predict_z(Xh[:2000], preh[:2000]) - TransformerForecaster(net, inputs).predict_z(Xh[:2000], preh[:2000])).max())
        print(f"numpy vs torch: largest quantile difference {gap:.2e}", flush=True)
        if gap > 1e-3:
            raise SystemExit(f"the numpy network differs from torch's by {gap}")
        if args.save:
            seq.save(args.save)
        if args.envelope:
            seq = EnvelopedForecaster(seq)
    models = {"xgboost": load_forecaster(), "transformer": seq}
    n_params = sum(p.numel() for p in net.parameters())
    doc: dict = {"command": f"python benchmarks/forecast_transformer.py --studies {args.studies} --holdout {args.holdout} "
                            f"--trials {args.trials} --epochs {args.epochs} --seed {args.seed} --real-seeds {args.real_seeds} "
                            f"--replay-seeds {args.replay_seeds}" + (" --monotone" if args.monotone else "")
                            + (" --envelope" if args.envelope else ""),
                 "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}",
                 "rows_train": int(len(y)), "rows_holdout": int(len(yh)), "seconds_rows": round(t_rows, 1),
                 "seconds_train": round(t_train, 1), "transformer_parameters": int(n_params)}
    doc["synthetic"] = synthetic(models, Xh, yh, preh)
    print(json.dumps(doc["synthetic"], indent=1), flush=True)
    doc["latency"] = latency(models)
    print(json.dumps(doc["latency"]), flush=True)
    banks = [str(BANKS / b) for b in ("taskset_imdb_rnn.jsonl.gz", "digits_mlp.jsonl.gz", "mnist5k_mlp.jsonl.gz",
                                      "mnist1d_cnn.jsonl.gz")]
    os.chdir(BANKS.parents[1])  # the unseen banks are named as in the other reports
    gs = groups(banks, ["benchmarks/banks/dynamics/*.jsonl.gz", "benchmarks/banks/budget/*.jsonl.gz"])
    doc["real"] = {g: real(models, ts, args.real_seeds, 200) for g, ts in gs.items() if g != "tuning half"}
    print(json.dumps(doc["real"], indent=1), flush=True)
    if args.replay_seeds:
        shipped = {"risk": 0.002, "forecast_tie": 2.0, "protect_top": 0.05}
        tune = {}
        for r in args.risks:
            tune[r] = replay_with(models["transformer"], gs["tuning half"], {**shipped, "risk": r}, args.replay_seeds, 200, args.jobs)
            print(f"tuning half, transformer, risk {r}: {tune[r]['median_cost_ratio_vs_none']:.3f} cost, "
                  f"{tune[r]['kept_best_rate']:.0%} kept", flush=True)
        ok = [r for r in args.risks if tune[r]["kept_best_rate"] >= 0.9]
        chosen = min(ok, key=lambda r: tune[r]["median_cost_ratio_vs_none"]) if ok else max(args.risks, key=lambda r: tune[r]["kept_best_rate"])
        doc["replay_tuning"] = {str(r): v for r, v in tune.items()}
        doc["replay_risk_chosen"] = chosen
        doc["replay"] = {}
        for g, ts in gs.items():
            if g == "tuning half":
                continue
            doc["replay"][g] = {"xgboost": replay_with(models["xgboost"], ts, shipped, args.replay_seeds, 200, args.jobs),
                                "transformer": replay_with(models["transformer"], ts, {**shipped, "risk": chosen},
                                                           args.replay_seeds, 200, args.jobs)}
            print(g, json.dumps(doc["replay"][g]), flush=True)
    doc["wall_s"] = round(time.time() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    doc["monotone"], doc["envelope"] = args.monotone, args.envelope
    name = "forecast_transformer" + ("_monotone" if args.monotone else "") + ("_envelope" if args.envelope else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=1))
    (RESULTS / f"{name}.md").write_text(report(doc))
    print(report(doc))


def report(doc: dict) -> str:
    syn = doc["synthetic"]
    title = "A small transformer forecaster" + (", monotone in the trial's value," if doc.get("monotone") else "") \
        + (", made monotone in the trial's value at decision time," if doc.get("envelope") else "")
    lines = [f"# {title} against the shipped gradient-boosted one", "",
             f"Command: `{doc['command']}`  ",
             f"Machine: {doc['machine']}; rows {doc['seconds_rows']:.0f} s, transformer training {doc['seconds_train']:.0f} s, "
             f"{doc['wall_s']:.0f} s in all. Transformer: 2 layers, width 64, 4 heads, {doc['transformer_parameters']} "
             f"parameters. Both read {doc['rows_train']} rows of the same synthetic studies (the boosted model is the "
             "shipped one, trained on them by `train_forecaster.py`)."
             + (" Monotone variant: the transformer reads what the current value does not move (the other features, "
                "the prefix before the current epoch); the features it moves enter every quantile through non-negative "
                "weights and increasing activations (`MonotoneForecaster`)." if doc.get("monotone") else "")
             + (" Envelope: the plain network read with the current value set to each of 38 grid values (z units); "
                "P(final < x) at the trial's value is the largest of its linear interpolation over all values from "
                "there on (`SequenceForecaster.enveloped`), so it never rises as the value worsens; synthetic "
                "calibration is the network's own." if doc.get("envelope") else ""), "",
             f"## Held-out synthetic studies ({doc['rows_holdout']} rows)", "",
             "| model | pinball loss | coverage 0.05 | 0.1 | 0.5 | 0.9 | Brier P(beat) | log loss |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in syn.items():
        c = s["coverage"]
        lines.append(f"| {name} | {s['pinball']:.4f} | {c['0.05']:.3f} | {c['0.1']:.3f} | {c['0.5']:.3f} | {c['0.9']:.3f} | "
                     f"{s['brier']:.4f} | {s['log_loss']:.4f} |")
    lines += ["", "## P(beat the best finished trial) on real curves no model was trained on", "",
              "Trial-epochs of real studies (every earlier trial finished), as `forecast_report.py` reads them. "
              "\"Winners below 0.01\": the share of trials that did beat the best finished one that read P < 0.01 "
              "(a pruner at that risk stops them); \"losers below 0.01\": the share of the others it would stop. "
              "\"Worse reads likelier\": the share of reads where the last value made 0.1 of the study's scale worse "
              "raised P (it must never).", "",
              "| trials | model | n | base rate | Brier | log loss | winners below 0.01 | losers below 0.01 | worse reads likelier |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for g, per in doc["real"].items():
        for name, s in per.items():
            lines.append(f"| {g} | {name} | {s['n']} | {s['base_rate']:.3f} | {s['brier']:.4f} | {s['log_loss']:.4f} | "
                         f"{s['winners_below_0.01']:.1%} | {s['losers_below_0.01']:.1%} | {s['worse_value_likelier']:.1%} |")
    lines += ["", "## Decision time (one forecast, 200 finished trials, one thread)", "", "| model | median | p95 |", "|---|---:|---:|"]
    lines += [f"| {n} | {v['median_ms']:.2f} ms | {v['p95_ms']:.2f} ms |" for n, v in doc["latency"].items()]
    if "replay" in doc:
        lines += ["", "## The forecast pruner with each model (replay, 200 runs per study)", "",
                  f"The boosted model at the shipped policy (risk 0.002, forecast_tie 2, protect_top 0.05); the transformer at "
                  f"risk {doc['replay_risk_chosen']:g}, chosen on the tuning half (kept best >= 90%, cheapest): "
                  + ", ".join(f"risk {r}: cost {v['median_cost_ratio_vs_none']:.3f}, kept {v['kept_best_rate']:.0%}"
                              for r, v in doc["replay_tuning"].items()) + ".", "",
                  "| trials | model | cost vs none | norm regret | kept best |", "|---|---|---:|---:|---:|"]
        for g, per in doc["replay"].items():
            for name, s in per.items():
                lines.append(f"| {g} | {name} | {s['median_cost_ratio_vs_none']:.3f} | {s['median_norm_regret']:.3f} | "
                             f"{s['kept_best_rate']:.0%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
