"""``automl``: the command-line shell over the library (search, show).

Every usage error is one line on stderr naming the bad value and the valid choices, exit code 2.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from typing import Any, Optional

import click

from automl.decision.defaults import DEFAULT_RISK
from automl.search import BACKENDS, PRUNERS
from automl.training.data import DATASETS

__all__ = ["cli", "main", "SPACES"]

SPACES = ("mlp", "cnn", "resnet", "resnet_small")  # checked against search_spaces.SPACES in a test


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="automl-signals")
def cli() -> None:
    """Model selection that stops bad trials early, with a reason for every stop."""


def _storage_option(f):
    return click.option(
        "--storage",
        default="sqlite:///automl.db",
        show_default=True,
        help="Optuna storage: sqlite:///FILE, journal:///FILE, postgresql+psycopg://USER@HOST/DB, or memory.",
    )(f)


@cli.command()
@click.option("--space", type=click.Choice(SPACES), required=True, help="Candidate family.")
@click.option("--dataset", type=click.Choice(DATASETS), required=True, help="Bundled dataset.")
@click.option("--trials", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Budget per trial.")
@click.option("--backend", type=click.Choice(BACKENDS), default="optuna", show_default=True)
@click.option("--pruner", type=click.Choice(PRUNERS), default="signal", show_default=True)
@click.option("--metric", type=click.Choice(("val_acc", "val_loss")), default="val_acc", show_default=True)
@_storage_option
@click.option("--study", "study_name", default=None, help="Study name (default: SPACE-DATASET-PRUNER-seedSEED).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Trials in parallel.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on one study (optuna backend; a storage they all reach, e.g. journal:// or PostgreSQL).")
@click.option("--ray-address", default=None, help="Ray cluster address (e.g. 'auto'); default: a local Ray.")
@click.option("--heartbeat", type=click.IntRange(min=0), default=30, show_default=True,
              help="Seconds between a running trial's heartbeats on SQL storages; one silent for twice that is failed "
                   "by the next trial any worker starts (0: off).")
@click.option("--risk", type=click.FloatRange(min=0.0, max=1.0, min_open=True, max_open=True), default=DEFAULT_RISK,
              show_default=True, help="Forecast pruner: prune a trial whose probability of beating the best finished "
                                      "trial is below this.")
@click.option("--failure", is_flag=True,
              help="Signal pruner: also prune a trial the failure meta-classifier labels a sure failure (diverging, "
                   "exploding or vanishing gradients, dying ReLUs, underfitting).")
@click.option("--converge", is_flag=True,
              help="Signal pruner: also stop a trial whose layer dynamics settled and whose metric has not improved "
                   "for 3 epochs; it finishes with the value it reached (traces activations: a few % per epoch).")
@click.option("--overwrite", is_flag=True, help="Delete a study of the same name first (default: add trials to it).")
@click.option("--json", "as_json", is_flag=True, help="Print the leaderboard and summary as JSON.")
def search(
    space: str,
    dataset: str,
    trials: int,
    epochs: int,
    backend: str,
    pruner: str,
    metric: str,
    storage: str,
    study_name: Optional[str],
    seed: int,
    n_jobs: int,
    workers: int,
    ray_address: Optional[str],
    heartbeat: int,
    risk: float,
    failure: bool,
    converge: bool,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Run a search, show progress, print the leaderboard, and keep the study in STORAGE. Ctrl-C
    ends the running trial (FAIL, with the reason), prints the leaderboard so far and the command
    that resumes the study, and exits 130."""
    import optuna

    from automl.search import SearchSettings
    from automl.search.optuna_backend import interruptible
    from automl.storage import StorageError, open_storage

    if (failure or converge) and pruner != "signal":
        flags = " and ".join(f for f, on in (("--failure", failure), ("--converge", converge)) if on)
        raise click.UsageError(f"{flags}: options of the signal pruner, but --pruner is {pruner!r}.")
    settings = SearchSettings(
        space=space, dataset=dataset, trials=trials, epochs=epochs, backend=backend, pruner=pruner, metric=metric,
        storage=storage, study=study_name, seed=seed, n_jobs=n_jobs, ray_address=ray_address,
        heartbeat=heartbeat, failure=failure, converge=converge, risk=risk,
    )
    try:
        before = _trial_count(open_storage(storage), settings.study_name) if not overwrite else 0  # fail fast, before data loads
    except StorageError as exc:
        raise click.UsageError(str(exc)) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    guard = interruptible() if backend == "optuna" else contextlib.nullcontext()  # Ray Tune handles Ctrl-C itself
    try:
        with guard:
            study, worker_error = _run_with_progress(settings, workers, overwrite, as_json)
    except KeyboardInterrupt as exc:
        _interrupted(settings, getattr(exc, "how", "interrupted by the user (Ctrl-C)"), before, as_json, start)
    _print_study(study, as_json=as_json, wall_s=time.perf_counter() - start, storage=storage)
    if worker_error:
        click.echo(f"error: {worker_error}", err=True)
        sys.exit(1)


def _trial_count(storage: Any, name: str) -> int:
    """Trials the study ``name`` holds already (0 if there is no such study)."""
    import optuna

    try:
        return len(optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False))
    except KeyError:
        return 0


def _run_with_progress(settings: Any, workers: int, overwrite: bool, as_json: bool) -> tuple[Any, Optional[str]]:
    """Run the search under a progress bar: (the study, a worker error or None)."""
    import optuna
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from automl.search import WorkerError, run_search, run_workers
    from automl.storage import open_storage

    trials, storage = settings.trials, settings.storage
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), console=_console(stderr=True), transient=False, disable=as_json,
    ) as progress:
        task = progress.add_task(f"{settings.study_name}", total=trials, info="")
        counts: dict[str, int] = {}
        saved = [0]  # epochs the pruner saved so far (trials stopped before their budget)
        worker_error: Optional[str] = None

        def line(now: str = "") -> str:
            done = ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items()))
            return " · ".join(s for s in (now, done, f"{saved[0]} epochs saved" if saved[0] else "") if s)

        def on_trial_done(trial: Any) -> None:
            counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
            if trial.state.name in ("PRUNED", "COMPLETE"):  # a failed trial saved nothing
                saved[0] += max(0, settings.epochs - int(trial.user_attrs.get("epochs") or trial.last_step or settings.epochs))
            progress.update(task, advance=1, info=line())

        def on_epoch(number: int, epoch: int) -> None:
            progress.update(task, info=line(f"trial {number} epoch {epoch}/{settings.epochs}"))

        def on_progress(finished: int) -> None:
            progress.update(task, completed=finished, info=f"{workers} workers")

        try:
            # stdout carries only the leaderboard (or its JSON); Ray's own chatter goes to stderr.
            with contextlib.redirect_stdout(sys.stderr):
                if workers > 1:
                    try:
                        study = run_workers(settings, workers, overwrite=overwrite, on_progress=on_progress)
                    except WorkerError as exc:  # the others finished: show what is there, then fail
                        worker_error = str(exc)
                        study = optuna.load_study(study_name=settings.study_name, storage=open_storage(storage))
                else:
                    study = run_search(settings, overwrite=overwrite, on_trial_done=on_trial_done, on_epoch=on_epoch)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    return study, worker_error


def _interrupted(settings: Any, how: str, before: int, as_json: bool, start: float) -> None:
    """After Ctrl-C or SIGTERM: end this process's running trials with the reason, print the
    leaderboard so far and the command that resumes the study, and exit 130."""
    import optuna
    from optuna.trial import TrialState

    from automl.search.settings import worker_id
    from automl.storage import fail_trial, open_storage

    if settings.storage.strip() == "memory":
        click.echo(f"{how}: the study was kept in memory only and is gone.", err=True)
        sys.exit(130)
    study = optuna.load_study(study_name=settings.study_name, storage=open_storage(settings.storage))
    me = worker_id()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") == me:  # the signal came between epochs, inside Optuna: say it here
            fail_trial(study, t, f"{how} during epoch {(t.last_step or 0) + 1} of {settings.epochs}")
    ours = study.get_trials(deepcopy=False)[before:]
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in ours)
    stopped = sum(t.state == TrialState.FAIL and str(t.user_attrs.get("fail_reason", "")).startswith(how) for t in ours)
    _print_study(study, as_json=as_json, wall_s=time.perf_counter() - start, storage=settings.storage)
    left = max(1, settings.trials - finished)
    running = f"the {stopped} running trials ended FAIL" if stopped != 1 else "the running trial ended FAIL"
    click.echo(f"{how}: {finished} of {settings.trials} trials finished and are kept; {running} with that reason. "
               f"Resume with:\n  {_resume_command(settings.study_name, left)}", err=True)
    sys.exit(130)


def _resume_command(study_name: str, trials: int) -> str:
    """The `automl search` command line of this call, to add ``trials`` more trials to the same study."""
    import shlex

    ctx = click.get_current_context()
    words = ["automl", "search"]
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in ("overwrite", "study_name", "trials", "as_json"):
            continue
        value = ctx.params.get(param.name)
        if value is None or value == param.default or value is False:
            continue
        flag = max(param.opts, key=len)
        words += [flag] if param.is_flag else [flag, str(value)]
    words += ["--study", study_name, "--trials", str(trials)]
    return shlex.join(words)


@cli.command()
@click.argument("study_name", metavar="STUDY")
@_storage_option
@click.option("--json", "as_json", is_flag=True, help="Print the leaderboard and summary as JSON.")
def show(study_name: str, storage: str, as_json: bool) -> None:
    """Print a stored study's leaderboard again."""
    import optuna

    from automl.storage import StorageError, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        st = open_storage(storage, read_only=True)
    except StorageError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
        if study_name in names:
            study = optuna.load_study(study_name=study_name, storage=st)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file fails in the storage's own way
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise click.UsageError(f"cannot read storage {storage!r}: it is not a readable Optuna storage "
                               f"({type(exc).__name__}: {detail}).") from None
    if study_name not in names:
        raise click.UsageError(f"no study {study_name!r} in {storage}; studies there: {', '.join(names) or 'none'}.")
    if len(study.directions) > 1:
        raise click.UsageError(f"study {study_name!r} has {len(study.directions)} objectives; automl show reads single-objective studies.")
    _print_study(study, as_json=as_json, storage=storage)


@cli.command()
@click.argument("curves_file", metavar="CURVES.json", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--k", "k", type=click.IntRange(min=2), default=None,
              help="Ask the early question (will this run fail?): the early model reads the first K epochs (2-8, "
                   "what it was trained on). Default: the whole run (what went wrong?), any length, each label with "
                   "the epoch it rests on.")
@click.option("--n-classes", type=click.IntRange(min=2), default=None, help="Classes of the task (the rules' chance level; default 10).")
@click.option("--json", "as_json", is_flag=True, help='Print {"labels": {LABEL: p}, "healthy": p, "reasons": [...], "scope": "whole"|"early", "epochs": K, '
                   '"run_epochs": N, "onsets": {LABEL: EPOCH}, "rule_onsets": {LABEL: EPOCH}} as JSON.')
def diagnose(curves_file: str, k: Optional[int], n_classes: Optional[int], as_json: bool) -> None:
    """Label a run's failure from its curves: CURVES.json holds per-epoch lists train_loss, val_loss,
    train_acc, val_acc, and optionally test_acc (needed for 'shift'), grad_norm_first, grad_norm_last,
    zero_grad_frac (gradients: all three), weight_norm."""
    from automl.diagnosis import diagnose as _diagnose

    try:
        text = sys.stdin.read() if curves_file == "-" else open(curves_file, encoding="utf-8").read()
    except OSError as exc:
        raise click.UsageError(f"cannot read CURVES.json {curves_file!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"{curves_file!r} is not UTF-8 text (byte {exc.start}: {exc.reason}); JSON files are UTF-8.") from None
    try:
        curves = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"{curves_file!r} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except RecursionError:
        raise click.UsageError(f"{curves_file!r} nests too deeply to be curves: an object of per-epoch lists, or a list "
                               "of epoch records, is two or three levels deep.") from None
    try:
        result = _diagnose(curves, k=k, n_classes=n_classes)
    except ValueError as exc:
        raise click.UsageError(f"{curves_file}: {exc}") from None
    if as_json:
        click.echo(json.dumps(result.public()))
        return
    from rich.console import Console
    from rich.table import Table

    if result.scope == "whole":
        title = f"whole run: {result.run_epochs} epochs"
    else:
        of = f" of {result.run_epochs}" if result.run_epochs > result.epochs else ""
        title = f"early view: first {result.epochs}{of} epochs"
    table = Table(title=title)
    table.add_column("label")
    table.add_column("p", justify="right")
    if result.scope == "whole":
        table.add_column("from epoch", justify="right")
    for lab, p in sorted(result.labels.items(), key=lambda kv: -kv[1]):
        cells = [f"[bold]{lab}[/bold]" if p >= result.threshold else lab, f"{p:.3f}"]
        if result.scope == "whole":
            cells.append(str(result.onsets.get(lab, "")))
        table.add_row(*cells)
    console = Console()
    console.print(table)
    console.print(f"healthy p={result.healthy:.2f}", highlight=False)
    for reason in result.reasons:
        console.print(f"- {reason}", highlight=False)


@cli.command()
@click.option("--arch", required=True, help="An MLP spec: mlp:INPUT-HIDDEN...-CLASSES, e.g. mlp:784-128-64-10.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="How many guidance networks to list.")
@click.option("--zoo", "zoo_path", default=None, type=click.Path(file_okay=False), help="A zoo folder (default: the shipped one).")
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
def recommend(arch: str, top: int, zoo_path: Optional[str], as_json: bool) -> None:
    """Which guidance network (ENN) to train ARCH with: ENNs ranked by predicted test-accuracy
    gain over plain backprop, each with its uncertainty and the evidence behind it."""
    from automl.guidance.recommender import recommend as _recommend

    try:
        result = _recommend(arch, top=top, zoo_path=zoo_path)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result['arch']}: guidance networks by predicted gain (confidence {result['confidence']})")
    for col in ("ENN", "predicted gain", "±", "measured here (95% CI; p)", "β", "evidence: trained on; held-out R²; measured nearby"):
        table.add_column(col)
    for r in result["recommendations"]:
        ev = r["evidence"]
        near = ", ".join(f"{a[4:]}: {g:+.2f}" for a, g in ev["measured_gain_nearby"].items())
        here = ev.get("measured_here")
        shown = "not measured"
        if here:
            ci = f" [{here['ci95'][0]:+.2f}, {here['ci95'][1]:+.2f}]" if here["ci95"] else ""
            p_value = f"; p={here['p']:.2g}" if here["p"] is not None else ""
            shown = f"{here['mean']:+.2f}{ci}{p_value}" + ("" if here["significant"] else " (n.s.)")
        table.add_row(r["enn"], f"{r['predicted_gain']:+.2f}", f"{r['uncertainty']:.2f}", shown, f"{r['beta']:g}",
                      f"{ev['trained_on']['dataset']} x{len(ev['trained_on']['architectures'])} archs; "
                      f"R² {ev['held_out_r2']:.2f}; {near or 'none'}")
    console.print(table)
    for note in result["notes"]:
        console.print(f"- {note}", highlight=False)


@cli.group()
def enn() -> None:
    """Guidance networks: rebuild the zoo and the recommender."""


@enn.command("train")
@click.option("--out", default="enn-zoo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the new zoo; use it with `automl recommend --zoo DIR`.")
@click.option("--replace-shipped", is_flag=True, help="Write over the zoo shipped in the package (for maintainers).")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Processes.")
@click.option("--runs", type=click.IntRange(min=5), default=60, show_default=True, help="Plain runs each ENN learns from.")
@click.option("--guided-runs", type=click.IntRange(min=0), default=30, show_default=True, help="Then runs guided by the ENN itself.")
@click.option("--seeds", type=click.IntRange(min=2), default=5, show_default=True, help="Seeds per gain measurement (the shipped table has 15).")
def enn_train(out: str, replace_shipped: bool, jobs: int, runs: int, guided_runs: int, seeds: int) -> None:
    """Train the K=6 guidance networks, measure each one's gain on 12 architectures, and fit the
    recommender (writes enn-*.pt, zoo.json, gains.json and recommender.json.gz into --out; hours
    on 2 cores)."""
    from automl.guidance.recommender import build_zoo, fit_recommender, measure_gains, zoo_dir

    target = zoo_dir() if replace_shipped else out
    try:
        start = time.perf_counter()
        metas = build_zoo(target, jobs=jobs, runs=runs, guided_runs=guided_runs, replace_shipped=replace_shipped)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"zoo: {len(metas)} ENNs in {time.perf_counter() - start:.0f} s", err=True)
    measure_gains(target, seeds=range(seeds), jobs=jobs, replace_shipped=replace_shipped)
    click.echo(f"gains measured ({time.perf_counter() - start:.0f} s)", err=True)
    ev = fit_recommender(target, replace_shipped=replace_shipped)
    click.echo(f"recommender: top-1 within 0.3 points on {100 * ev['top1_within_0.3']:.0f}% of held-out architectures, "
               f"mean Spearman {ev['mean_spearman']}, error {ev['rmse']:.2f} points; {time.perf_counter() - start:.0f} s in all"
               + ("" if replace_shipped else f"; use it with `automl recommend --zoo {target}`"))


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1, or AUTOML_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default 8000, or AUTOML_PORT).")
@click.option("--storage", default=None, help="Optuna storage URL (default sqlite:///automl.db, or AUTOML_STORAGE).")
def serve(host: Optional[str], port: Optional[int], storage: Optional[str]) -> None:
    """Run the HTTP service (OpenAPI at /docs). Requests that start or cancel searches need
    AUTOML_API_TOKEN, sent as 'Authorization: Bearer <token>'."""
    import uvicorn

    from automl.service import LOOPBACK, ServiceSettings, create_app
    from automl.storage import StorageError, open_storage

    given = {k: v for k, v in (("host", host), ("port", port), ("storage", storage)) if v is not None}
    settings = ServiceSettings(**given)
    try:
        open_storage(settings.storage)
    except StorageError as exc:
        raise click.UsageError(str(exc)) from None
    if settings.host not in LOOPBACK and settings.api_token is None:
        raise click.UsageError(f"binding to {settings.host!r} beyond loopback needs AUTOML_API_TOKEN set.")
    if settings.api_token is None:
        click.echo("AUTOML_API_TOKEN is not set: searches cannot be started or cancelled, only read.", err=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@cli.group()
def bench() -> None:
    """Benchmarks: replay recorded curves through pruners."""


@bench.command("replay")
@click.argument("banks", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--pruners", default=",".join(("none", "median", "percentile25", "asha", "hyperband", "patient", "signal",
                                             "forecast", "ray-asha", "ray-median", "signal-ray", "topk1", "oracle")),
              show_default=True, help="Comma-separated pruner names: Optuna's (none, median, percentile25, asha, hyperband, "
              "patient), ours on Optuna (signal: the default checks; forecast: Policy(rule='forecast')), Ray Tune's "
              "schedulers (ray-asha, ray-median) and ours on Ray (signal-ray, forecast-ray), and the bounds topk1 and oracle.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=200, show_default=True, help="Runs drawn per task and seed.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Processes.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the results here.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None, help="Write a cost-vs-regret PNG here.")
def bench_replay(banks: tuple[str, ...], pruners: str, seeds: int, trials: int, jobs: int,
                 json_out: Optional[str], plot_out: Optional[str]) -> None:
    """Replay BANKS (curve banks, .jsonl.gz) through each pruner; print the summary."""
    from rich.progress import Progress
    from rich.table import Table

    from automl.bench import replay as rp
    from automl.bench.bank import BankError, read_bank, runs_by_task

    names = [p.strip() for p in pruners.split(",") if p.strip()]
    unknown = [p for p in names if p not in rp.PRUNERS]
    if unknown:
        raise click.UsageError(f"unknown pruner(s) {', '.join(unknown)} in --pruners; choose from {', '.join(rp.PRUNERS)}.")
    if "none" not in names:
        names.insert(0, "none")  # the cost baseline
    tasks: dict[str, list] = {}
    try:
        for bank in banks:
            for task, runs in runs_by_task(read_bank(bank)).items():
                tasks.setdefault(task, []).extend(runs)
    except BankError as exc:
        raise click.UsageError(str(exc)) from None
    start = time.perf_counter()
    with Progress(console=_console(stderr=True), transient=True) as progress:
        bar = progress.add_task("replay", total=len(tasks) * len(names))
        doc = rp.replay(tasks, names, seeds=seeds, trials=trials, jobs=jobs, progress=lambda t, p: progress.advance(bar))
    doc["meta"] = {"banks": list(banks), "seeds": seeds, "trials": trials, "wall_s": round(time.perf_counter() - start, 1)}
    if json_out:
        with open(json_out, "w") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
    if plot_out:
        rp.plot(doc, plot_out)
    table = Table(title=f"replay: {len(tasks)} tasks x {seeds} seeds x {trials} trials ({doc['meta']['wall_s']} s)")
    for col in ("pruner", "median cost vs none", "median norm regret", "kept best"):
        table.add_column(col, justify="left" if col == "pruner" else "right")
    for p, s in doc["summary"].items():
        fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
        table.add_row(p, fmt(s["median_cost_ratio_vs_none"], ".3f"), fmt(s["median_norm_regret"], ".3f"), fmt(s["kept_best_rate"], ".0%"))
    _console().print(table)


@bench.command("record")
@click.option("--space", type=click.Choice(SPACES), required=True)
@click.option("--dataset", type=click.Choice(DATASETS), required=True)
@click.option("--runs", type=click.IntRange(min=1), required=True, help="Configurations to train to the full budget.")
@click.option("--epochs", type=click.IntRange(min=1), required=True, help="The budget (the largest, with --min-epochs).")
@click.option("--min-epochs", type=click.IntRange(min=1), default=None,
              help="Make the budget a hyperparameter: each run draws its own from [MIN_EPOCHS, EPOCHS].")
@click.option("--schedule", type=click.Choice(("constant", "cosine", "step")), default="constant", show_default=True,
              help="Learning-rate schedule, run to each run's own budget.")
@click.option("--seed", type=int, default=0, show_default=True, help="Draws the configurations (run i is fixed).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Bank to write or resume (.jsonl.gz).")
@click.option("--metric", type=click.Choice(("val_acc", "val_loss")), default="val_acc", show_default=True)
@click.option("--every-k-steps", type=click.IntRange(min=1), default=None, help="Activation logging period (default: ~200 points a run).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Processes.")
@click.option("--ncp", type=click.Choice(("shadow", "head")), default=None,
              help="Record βeff of a neural capacitance probe: beside the head (shadow) or as the head.")
def bench_record(space: str, dataset: str, runs: int, epochs: int, min_epochs: Optional[int], schedule: str, seed: int,
                 out: str, metric: str, every_k_steps: Optional[int], jobs: int, ncp: Optional[str]) -> None:
    """Train RUNS sampled configurations to the full budget and write every curve and probe signal
    to a curve bank; re-running the same command resumes without redoing finished runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from automl.bench.recorder import record_bank

    start = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(stderr=True)) as progress:
        bar = progress.add_task(f"{dataset} x {space}", total=runs)
        try:
            n = record_bank(space, dataset, runs=runs, epochs=epochs, seed=seed, out=out, metric=metric,
                            every_k_steps=every_k_steps, jobs=jobs, ncp=ncp, min_epochs=min_epochs,
                            schedule=schedule, progress=lambda run: progress.advance(bar))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(f"recorded {n} runs ({runs - n} were already in {out}) in {time.perf_counter() - start:.0f} s")


def _console(stderr: bool = False):
    from rich.console import Console

    import os

    # a terminal's own width, or COLUMNS when set; a pipe without COLUMNS gets wide lines, not 80
    wide = not (sys.stderr if stderr else sys.stdout).isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=200 if wide else None)


def _fmt_params(params: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={f(v)}" for k, v in params.items())


def _print_study(study: Any, *, as_json: bool, storage: str, wall_s: Optional[float] = None) -> None:
    from rich.table import Table

    from automl.search import leaderboard, summarize

    rows, summary = leaderboard(study), summarize(study)
    if wall_s is not None:
        summary["wall_s"] = round(wall_s, 1)
    if as_json:
        clean = lambda d: {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in d.items()}  # noqa: E731
        out = {"summary": clean(summary), "leaderboard": [clean(r) for r in rows]}
        click.echo(json.dumps(out, indent=2, allow_nan=False))  # strict JSON: non-finite -> null
        return
    metric = summary["metric"]
    from rich import box

    # no vertical rules: at 80 columns that leaves each "name=value" its line
    table = Table(title=f"study {study.study_name} ({metric}, {summary['direction']})", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for col, just in (("trial", "right"), ("state", "left"), (metric, "right"), ("epochs", "right")):
        table.add_column(col, justify=just, no_wrap=True)  # numbers never split across lines; the text columns give way
    for col in ("params", "reason"):  # they share what is left
        table.add_column(col, justify="left", overflow="fold", ratio=1)
    console = _console()
    sep = "\n" if console.width < 160 else " "  # narrow: a "name=value" has a line of its own, never split
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        table.add_row(str(r["number"]), r["state"], value, str(r["epochs"]), _fmt_params(r["params"]).replace(" ", sep), r["reason"])
    console.print(table)
    states = ", ".join(f"{v} {k.lower()}" for k, v in sorted(summary["states"].items()))
    full = summary["epochs_full_budget"]
    share = f" ({summary['epochs_used'] / full:.0%} of the full budget {full})" if full else ""
    best = (
        f"best {metric} {summary['best_value']:.4f} (trial {summary['best_trial']})"
        if summary["best_value"] is not None
        else "no finished trial"
    )
    took = f" in {summary['wall_s']} s" if "wall_s" in summary else ""
    console.print(f"{summary['trials']} trials ({states}){took}; {summary['epochs_used']} epochs{share}; {best}.")
    if storage.strip() == "memory":
        console.print("kept in memory only: the study is gone when this command exits (--storage sqlite:///FILE keeps it).")
    else:
        console.print(f"stored in {storage} as {study.study_name!r}: automl show {study.study_name} --storage {storage}")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: click without its multi-line usage box; errors are one line, exit code 2."""
    try:
        cli.main(args=argv, prog_name="automl", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `automl`: the help is what the user wants
        click.echo(exc.format_message() if hasattr(exc, "format_message") else str(exc))
        sys.exit(0)
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
