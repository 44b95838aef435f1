"""The training probe: the only part of the library that touches a live ``torch.nn.Module``.

Attach it to any training loop with two calls::

    probe = Probe(model, probe_batch=x_val[:256], optimizer=opt)
    for epoch in range(epochs):
        for xb, yb in loader:
            opt.zero_grad(); loss_fn(model(xb), yb).backward(); opt.step()
            probe.step()                      # after the optimizer step, before the next zero_grad
        record = probe.end_epoch(train_loss=..., val_loss=..., val_acc=...)

``step`` reads the weight gradients of each layer (norm and fraction of exact zeros) every
``grad_every`` steps and, every ``every_k_steps`` steps, the RMS activation of each layer on a
fixed probe batch. ``end_epoch`` adds the weight statistics and the epoch-end activations and
returns an :class:`~automl.records.EpochRecord`; with the step-level trace it also applies the
convergence rule of :func:`automl.signals.dynamics.convergence` to the whole trace so far
(``EpochRecord.dynamics``), and ``should_stop()`` then says whether the trial has converged::

        automl.report(record, trial, metric="val_acc")
        if trial.should_prune():
            raise optuna.TrialPruned()
        if probe.should_stop(trial, metric="val_acc"):  # converged: finish normally, reason stored
            break
 Statistics stay on the model's device until the
epoch ends, so the probe adds one host synchronisation per epoch, not per step.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from torch import nn

from automl.decision import Policy, TrialHistory, Verdict, converged_verdict
from automl.records import METRICS, ActivationTrace, EpochRecord, LayerStats
from automl.reporting import STOP_ATTRS, verdict_attrs
from automl.signals.capacitance import WEIGHTINGS
from automl.signals.dynamics import convergence
from automl.training.ncp import DEFAULT_HIDDEN, NCP, ShadowNCP
from automl.validation import check_metric, check_optional_positive_int, check_positive_int, finite_or_none

_RULE_ARGS = tuple(p for p in inspect.signature(convergence).parameters if p != "x")

NCP_MODES = ("head", "shadow")

__all__ = ["Probe", "find_layers", "STOP_ATTRS", "converged_stop", "auto_every_k_steps"]


def auto_every_k_steps(n_train: int, batch_size: int, epochs: int, points: int = 200) -> int:
    """The probe's sampling rate for a run: k (``every_k_steps``) so that it logs about ``points``
    activation rows over its budget (at least 1)."""
    steps = math.ceil(n_train / batch_size) * epochs
    return max(1, steps // points)


def find_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers the probe watches: modules owning a ``weight`` of rank >= 2 (Linear, Conv, ...),
    in registration order, which is the forward order for the models of ``search_spaces``."""
    found = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.dim() >= 2:
            found.append((name or type(module).__name__, module))
    return found



def converged_stop(records: Sequence[EpochRecord], trial: Optional[Any] = None, *, metric: str = "val_loss",
                   policy: Optional[Policy] = None) -> Optional[Verdict]:
    """The ``converged`` verdict for a run's records so far (:func:`automl.converged_verdict` on the
    latest record's convergence rule and the metric's curve), or ``None`` to go on.

    With an ``optuna.Trial``, a verdict's reason is stored on it as the user attributes
    ``stop_reason``, ``stop_epoch``, ``stop_source`` and ``stop_evidence``.
    """
    check_metric(metric, METRICS)
    if policy is not None and not isinstance(policy, Policy):
        raise TypeError(f"policy must be an automl.Policy, but got {type(policy).__name__}.")
    if not records:
        return None
    policy = policy or Policy(convergence="dynamics")
    history = TrialHistory(0, {r.epoch: r.metric(metric) for r in records}, records=[records[-1].compact()])
    verdict = converged_verdict(history, METRICS[metric], policy, metric=metric)  # type: ignore[arg-type]
    if verdict is not None and trial is not None:
        for key, value in verdict_attrs(verdict, verdict.evidence.get("epoch")).items():
            trial.set_user_attr(key, value)
    return verdict


class Probe:
    """Watches a model while it trains and produces one ``EpochRecord`` per epoch.

    Args:
        model: any ``torch.nn.Module``.
        probe_batch: a fixed input batch (no labels) for activation RMS; ``None`` skips activations.
        optimizer: read for the learning rate of the first parameter group.
        every_k_steps: also log per-layer activation RMS every k optimizer steps (for the
            dynamics signals); ``None`` logs only at epoch end.
        trace_batch_size: the step-level trace reads only the first this many samples of
            ``probe_batch`` (the epoch-end RMS reads all of it). The batch is fixed, so a small one
            adds no sampling noise over time, and it keeps the trace cheap: one forward of 32
            samples every k steps (``benchmarks/results/dynamics_cost.md``).
        grad_every: read gradients every this many steps (1 = every step).
        layers: names of the modules to watch (``model.named_modules()`` names); default: every
            module with a weight of rank >= 2.
        ncp: record the neural capacitance βeff of a probe head (see :mod:`automl.training.ncp`):
            ``"head"`` reads the NCP installed as the model's head (``install_ncp_head`` before the
            optimizer is built); ``"shadow"`` trains an NCP on the detached features beside the
            real head, and then ``step`` needs the batch labels: ``probe.step(targets=yb)``.
        features: the module whose output the shadow NCP reads (default: ``model.features``).
        ncp_hidden, ncp_lr, ncp_seed, ncp_classes: the shadow NCP's hidden widths, Adam learning
            rate, initialisation seed and number of classes (default: read from the model's output).
        beta_weighting: the link weighting recorded as ``EpochRecord.beta_eff`` (both are kept in
            ``EpochRecord.capacitance``).
        convergence_rule: keyword arguments for :func:`automl.signals.dynamics.convergence`
            (``window``, ``vol_window``, ``fraction``, ``hold``, ``n_null``, ``null_share``,
            ``seed``), applied at each epoch end to the whole activation trace.

    Non-finite gradients, weights or activations are recorded as ``nan``/``inf`` (``null`` in
    JSON): they are evidence of divergence, never an error.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> probe = Probe(model, probe_batch=torch.randn(16, 4), optimizer=opt)
        >>> loss = model(torch.randn(16, 4)).pow(2).mean(); loss.backward(); opt.step(); probe.step()
        >>> rec = probe.end_epoch(train_loss=loss.item())
        >>> rec.epoch, rec.step, [l.name for l in rec.layers], rec.lr
        (1, 1, ['0', '2'], 0.1)
        >>> probe.close()
    """

    def __init__(
        self,
        model: nn.Module,
        probe_batch: Optional[torch.Tensor] = None,
        *,
        optimizer: Optional[torch.optim.Optimizer] = None,
        every_k_steps: Optional[int] = None,
        trace_batch_size: int = 32,
        grad_every: int = 1,
        layers: Optional[Sequence[str]] = None,
        ncp: Optional[str] = None,
        features: Optional[str] = None,
        ncp_hidden: Sequence[int] = DEFAULT_HIDDEN,
        ncp_lr: float = 1e-3,
        ncp_seed: int = 0,
        ncp_classes: Optional[int] = None,
        beta_weighting: str = "product",
        convergence_rule: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, but got {type(model).__name__}.")
        every_k_steps = check_optional_positive_int("every_k_steps", every_k_steps)
        trace_batch_size = check_positive_int("trace_batch_size", trace_batch_size)
        grad_every = check_positive_int("grad_every", grad_every)
        self.model = model
        self.optimizer = optimizer
        self.every_k_steps = every_k_steps
        self.grad_every = grad_every

        if layers is None:
            self._layers = find_layers(model)
        else:
            modules = dict(model.named_modules())
            unknown = [n for n in layers if n not in modules]
            if unknown:
                raise ValueError(f"layers {unknown} are not modules of the model; known: {sorted(modules)[:20]}...")
            self._layers = [(n, modules[n]) for n in layers]
        if not self._layers:
            raise ValueError("the model has no layer with a weight of rank >= 2; name the layers to watch with layers=[...].")

        self.probe_batch: Optional[torch.Tensor] = None
        if probe_batch is not None:
            if not isinstance(probe_batch, torch.Tensor) or probe_batch.dim() < 1 or probe_batch.shape[0] == 0:
                raise ValueError("probe_batch must be a non-empty tensor with a batch axis first.")
            self.probe_batch = probe_batch.detach()
        self.trace_batch_size = trace_batch_size

        if ncp not in (None, *NCP_MODES):
            raise ValueError(f"ncp must be None, 'head' or 'shadow', but got {ncp=}.")
        check_metric(beta_weighting, WEIGHTINGS, name="beta_weighting")
        rule = dict(convergence_rule or {})
        unknown_args = sorted(set(rule) - set(_RULE_ARGS))
        if unknown_args:
            raise ValueError(f"convergence_rule has unknown keys {unknown_args}; expected some of {list(_RULE_ARGS)}.")
        convergence([[0.0, 1.0]], **{**rule, "n_null": 0})  # validates the values now, not at the first epoch end
        self.convergence_rule = rule
        self._all_steps: list[int] = []
        self._all_rms: list[list[float]] = []
        self._dynamics: Optional[dict[str, Any]] = None
        self._series: Any = None  # the stability series so far: each epoch computes only its new windows
        self.stop_verdict: Optional[Verdict] = None
        self.ncp_mode = ncp
        self.beta_weighting = beta_weighting
        self._shadow: Optional[ShadowNCP] = None
        self._head_ncp: Optional[NCP] = None
        if ncp == "head":
            found = [m for m in model.modules() if isinstance(m, NCP)]
            if not found:
                raise ValueError(
                    "ncp='head' reads an NCP installed as the model's head: call automl.training.ncp.install_ncp_head(model) "
                    "before building the optimizer, or use ncp='shadow' to leave the model unchanged."
                )
            self._head_ncp = found[-1]
        elif ncp == "shadow":
            self._shadow = ShadowNCP(model, features, n_classes=ncp_classes, hidden=ncp_hidden, lr=ncp_lr, seed=ncp_seed)

        self.records: list[EpochRecord] = []
        self.global_step = 0
        self._capturing = False
        self._act: list[Optional[torch.Tensor]] = [None] * len(self._layers)
        self._hooks = [m.register_forward_hook(self._make_hook(i)) for i, (_, m) in enumerate(self._layers)]
        self._reset_epoch()

    # -- hooks and accumulators -------------------------------------------------------------
    def _make_hook(self, index: int):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._capturing and isinstance(output, torch.Tensor):
                self._act[index] = output.detach().float().pow(2).mean().sqrt()

        return hook

    def _reset_epoch(self) -> None:
        self._epoch_start = time.perf_counter()
        self._grad_sum: Optional[torch.Tensor] = None
        self._zero_sum: Optional[torch.Tensor] = None
        self._grad_count = 0
        self._trace_steps: list[int] = []
        self._trace_rows: list[torch.Tensor] = []
        self._trace_beta: list[float] = []

    @property
    def layer_names(self) -> list[str]:
        return [n for n, _ in self._layers]

    def _device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def _activation_rms(self, n: Optional[int] = None) -> Optional[torch.Tensor]:
        """Per-layer RMS on the probe batch (its first ``n`` samples if given), in eval mode."""
        if self.probe_batch is None:
            return None
        batch = self.probe_batch if n is None else self.probe_batch[:n]
        was_training = self.model.training
        self._capturing = True
        self._act = [None] * len(self._layers)
        try:
            self.model.eval()
            self.model(batch.to(self._device(), non_blocking=True))
        finally:
            self._capturing = False
            self.model.train(was_training)
        nan = torch.tensor(float("nan"), device=self._device())
        return torch.stack([a if a is not None else nan for a in self._act])

    @property
    def ncp(self) -> Optional[NCP]:
        """The NCP whose weights give βeff (``None`` without one, or before a shadow NCP's first batch)."""
        return self._head_ncp if self._shadow is None else self._shadow.ncp

    def _beta(self) -> dict[str, float]:
        ncp = self.ncp
        return ncp.beta_eff() if ncp is not None else {}

    # -- public API -------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, targets: Optional[torch.Tensor] = None) -> None:
        """Call once per optimizer step, after ``optimizer.step()`` and before the next ``zero_grad``.

        With ``ncp="shadow"``, pass the batch labels: the shadow NCP takes one step on them.
        """
        if self._shadow is not None:
            if targets is None:
                raise ValueError("ncp='shadow' trains on each batch's labels: call probe.step(targets=yb).")
            self._shadow.train_step(targets)
        self.global_step += 1
        if self.global_step % self.grad_every == 0:
            norms, zeros = [], []
            nan = None
            for _, module in self._layers:
                g = module.weight.grad
                if g is None:
                    nan = nan if nan is not None else torch.tensor(float("nan"), device=module.weight.device)
                    norms.append(nan)
                    zeros.append(nan)
                else:
                    norms.append(torch.linalg.vector_norm(g.float()))
                    zeros.append((g == 0).float().mean())
            norms_t, zeros_t = torch.stack(norms), torch.stack(zeros)
            if self._grad_sum is None:
                self._grad_sum, self._zero_sum = norms_t, zeros_t
            else:
                self._grad_sum = self._grad_sum + norms_t
                self._zero_sum = self._zero_sum + zeros_t
            self._grad_count += 1
        if self.every_k_steps is not None and self.global_step % self.every_k_steps == 0:
            rms = self._activation_rms(self.trace_batch_size)
            beta = self._beta().get(self.beta_weighting) if self.ncp_mode else None
            if rms is not None or beta is not None:
                self._trace_steps.append(self.global_step)
                if rms is not None:
                    self._trace_rows.append(rms)
                if beta is not None:
                    self._trace_beta.append(beta)

    @torch.no_grad()
    def end_epoch(
        self,
        *,
        train_loss: Optional[float] = None,
        train_acc: Optional[float] = None,
        val_loss: Optional[float] = None,
        val_acc: Optional[float] = None,
        test_loss: Optional[float] = None,
        test_acc: Optional[float] = None,
        lr: Optional[float] = None,
    ) -> EpochRecord:
        """Close the epoch: gather statistics, return its ``EpochRecord`` (also kept in ``records``)."""
        act = self._activation_rms()
        weights = [m.weight.detach().float() for _, m in self._layers]
        wstats = torch.stack(
            [
                torch.stack([w.mean(), w.std() if w.numel() > 1 else torch.zeros((), device=w.device),
                             torch.linalg.vector_norm(w), w.abs().max()])
                for w in weights
            ]
        ).cpu().tolist()
        grad = (self._grad_sum / self._grad_count).cpu().tolist() if self._grad_count else [None] * len(weights)
        zero = (self._zero_sum / self._grad_count).cpu().tolist() if self._grad_count else [None] * len(weights)
        act_list = act.cpu().tolist() if act is not None else [None] * len(weights)

        layers = [
            LayerStats(
                name=name,
                grad_norm=grad[i],
                zero_grad_frac=zero[i],
                weight_mean=wstats[i][0],
                weight_std=wstats[i][1],
                weight_norm=wstats[i][2],
                weight_abs_max=wstats[i][3],
                act_rms=act_list[i],
            )
            for i, name in enumerate(self.layer_names)
        ]
        trace = None
        dynamics = None
        if self._trace_steps:
            rms_rows = torch.stack(self._trace_rows).cpu().tolist() if self._trace_rows else []
            trace = ActivationTrace(steps=self._trace_steps, rms=rms_rows, beta_eff=self._trace_beta)
            if rms_rows:
                self._all_steps += self._trace_steps
                self._all_rms += rms_rows
                dynamics = self._update_dynamics()
        capacitance = None
        if self.ncp_mode:
            capacitance = self._beta()
            if self._shadow is not None:
                capacitance.update(self._shadow.epoch_stats())
        if lr is None and self.optimizer is not None and self.optimizer.param_groups:
            lr = float(self.optimizer.param_groups[0]["lr"])
        record = EpochRecord(
            epoch=len(self.records) + 1,
            step=self.global_step,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            test_loss=test_loss,
            test_acc=test_acc,
            lr=lr,
            wall_time=time.perf_counter() - self._epoch_start,
            layers=layers,
            activations=trace,
            dynamics=dynamics,
            beta_eff=capacitance.get(self.beta_weighting) if capacitance else None,
            capacitance=capacitance or None,
        )
        self.records.append(record)
        self._reset_epoch()
        return record

    def _update_dynamics(self) -> dict[str, Any]:
        """Apply the convergence rule to the whole trace so far (numpy, a few ms; the null
        surrogates are drawn only once the rule has fired, and not again once it counted)."""
        import numpy as np

        X = np.asarray(self._all_rms, dtype=float).T
        steps = self._all_steps
        prev = self._dynamics or {}
        rule = self.convergence_rule
        if prev.get("converged_step") is not None:  # converged stays converged: no new surrogates
            rule = {**rule, "n_null": 0}
        c = convergence(X, **rule, previous=self._series)
        s = self._series = c.series

        def last(a: "np.ndarray") -> Optional[float]:
            return finite_or_none(a[-1]) if len(a) else None

        step_of = lambda i: None if i is None else int(steps[i])  # noqa: E731
        vol = s.volatility[np.isfinite(s.volatility)] if len(s.volatility) else s.volatility
        out = {
            "points": len(steps),
            "integration": last(s.integration),
            "metastability": last(s.metastability),
            "dsi": last(s.dsi),
            "volatility": last(s.volatility),
            "volatility_peak": float(vol.max()) if len(vol) else None,
            "fired_step": step_of(c.fired),
            "converged_step": prev.get("converged_step") or step_of(c.index),
            "null_fired_share": prev.get("null_fired_share") if prev.get("converged_step") else
            finite_or_none(c.null_fired_share),
            "null_median_step": prev.get("null_median_step") if prev.get("converged_step") else
            (step_of(int(c.null_median)) if math.isfinite(c.null_median) else None),
        }
        self._dynamics = out
        return out

    def should_stop(self, trial: Optional[Any] = None, *, metric: str = "val_loss", policy: Optional[Policy] = None) -> bool:
        """Whether the trial has converged (``automl.converged_verdict``): the convergence rule over
        the layer activations has fired, and ``metric`` has not improved for
        ``policy.convergence_patience`` epochs. Finish the trial normally when it says so: in Optuna
        it is then COMPLETE with the value it reached.

        With an ``optuna.Trial``, the verdict's reason is stored on it as the user attributes
        ``stop_reason``, ``stop_epoch``, ``stop_source`` and ``stop_evidence``; ``stop_verdict``
        keeps the full verdict either way. Needs the step-level trace (``every_k_steps``).
        """
        if self.every_k_steps is None or self.probe_batch is None:
            raise ValueError("should_stop reads the activation trace: create the Probe with a probe_batch and every_k_steps=k.")
        self.stop_verdict = converged_stop(self.records, trial, metric=metric, policy=policy)
        return self.stop_verdict is not None

    def close(self) -> None:
        """Remove the forward hooks (the model is left as it was)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._shadow is not None:
            self._shadow.close()

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
