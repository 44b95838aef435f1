"""The neural capacitance probe (NCP): a small MLP head whose weights give βeff.

Two ways to attach it (Jiang et al., arXiv 2201.04194; measured against each other in
``benchmarks/results/capacitance.md``):

- ``head``: the NCP *replaces* the model's output layer and trains with the network, as in the
  paper. Install it before building the optimizer::

      ncp = install_ncp_head(model)              # model.head is now the NCP
      opt = torch.optim.Adam(model.parameters())
      probe = Probe(model, x_val[:256], optimizer=opt, ncp="head")

- ``shadow``: an NCP beside the real head, trained with its own optimizer on the *detached*
  features of each training batch; the candidate trains exactly as it would without it. The probe
  needs the batch labels: ``probe.step(targets=yb)``.

The features are the output of the model's penultimate module: ``model.features`` for the models
of ``search_spaces``, or the module named by ``features="..."``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import nn

from automl.signals.capacitance import WEIGHTINGS, beta_eff
from automl.validation import check_optional_positive_int

__all__ = ["NCP", "ShadowNCP", "install_ncp_head", "find_features", "find_head", "DEFAULT_HIDDEN"]

#: Hidden widths of the NCP: three weight matrices, so the line graph has two link layers.
DEFAULT_HIDDEN: tuple[int, ...] = (64, 64)


class NCP(nn.Module):
    """Flatten, then ``(Linear, ReLU) × len(hidden)``, then ``Linear`` to ``n_classes``."""

    def __init__(self, in_features: int, n_classes: int, hidden: Sequence[int] = DEFAULT_HIDDEN) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if len(hidden) < 2 or any(h < 1 for h in hidden):
            raise ValueError(
                f"ncp_hidden must be two or more positive widths (βeff needs 3 weight matrices: with 2, no weight "
                f"has both an incoming and an outgoing link), but got {hidden}."
            )
        if int(in_features) < 1 or int(n_classes) < 1:
            raise ValueError(f"NCP needs in_features >= 1 and n_classes >= 1, but got {in_features=}, {n_classes=}.")
        widths = (int(in_features), *hidden, int(n_classes))
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def linear_weights(self) -> list[torch.Tensor]:
        return [m.weight for m in self.net if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def beta_eff(self) -> dict[str, float]:
        """βeff of the current weights under every link weighting (one host copy of small matrices)."""
        ws = [w.detach().cpu().double().numpy() for w in self.linear_weights()]
        return {name: beta_eff(ws, name) for name in WEIGHTINGS}


def _seeded(seed: int, build):
    """``build()`` on the CPU with the CPU generator seeded by ``seed``; the caller's CPU and CUDA
    random streams are left as they were (``torch.manual_seed`` would also reseed CUDA)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        return build()


def find_head(model: nn.Module, head: Optional[str] = None) -> tuple[str, nn.Linear]:
    """The output layer: ``head`` by name, ``model.head``, or the last module of an ``nn.Sequential``."""
    modules = dict(model.named_modules())
    if head is None:
        if isinstance(getattr(model, "head", None), nn.Linear):
            head = "head"
        elif isinstance(model, nn.Sequential) and len(model) and isinstance(model[-1], nn.Linear):
            head = str(len(model) - 1)
        else:
            raise ValueError(
                f"cannot find the output layer of {type(model).__name__}; name the nn.Linear it ends in with "
                f"head='...' (one of {[n for n, m in modules.items() if isinstance(m, nn.Linear)]})."
            )
    if not isinstance(modules.get(head), nn.Linear):
        raise ValueError(f"head={head!r} must name an nn.Linear of the model, but got {type(modules.get(head)).__name__}.")
    return head, modules[head]


def find_features(model: nn.Module, features: Optional[str] = None) -> tuple[str, nn.Module]:
    """The module whose output is the feature vector the head reads: ``features`` by name,
    ``model.features``, or everything but the last layer of an ``nn.Sequential``."""
    modules = dict(model.named_modules())
    if features is None:
        if isinstance(getattr(model, "features", None), nn.Module):
            return "features", model.features
        if isinstance(model, nn.Sequential) and len(model) >= 2:
            name = str(len(model) - 2)
            return name, model[-2]
        raise ValueError(
            f"cannot find the penultimate layer of {type(model).__name__}; name the module whose output the head "
            f"reads with features='...' (one of {sorted(n for n in modules if n)[:30]})."
        )
    if features not in modules or not features:
        raise ValueError(f"features={features!r} is not a module of the model; known: {sorted(n for n in modules if n)[:30]}.")
    return features, modules[features]


def install_ncp_head(model: nn.Module, *, head: Optional[str] = None, hidden: Sequence[int] = DEFAULT_HIDDEN,
                     seed: int = 0) -> NCP:
    """Replace the model's output layer by an NCP with the same inputs and outputs (``head`` mode).

    Call it before building the optimizer. The NCP's initial weights come from ``seed`` in a forked
    generator, so installing it does not shift the caller's random stream.
    """
    name, linear = find_head(model, head)
    ncp = _seeded(seed, lambda: NCP(linear.in_features, linear.out_features, hidden))
    ncp.to(device=linear.weight.device, dtype=linear.weight.dtype)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, ncp)
    return ncp


class ShadowNCP:
    """An NCP trained beside the real head on detached features (``shadow`` mode).

    A forward hook on the feature module keeps the features of the latest *training* forward pass;
    ``train_step(targets)`` fits the NCP on them for one Adam step. Built lazily at the first batch
    (input width from the features, ``n_classes`` given or read from the model's output).
    """

    def __init__(self, model: nn.Module, features: Optional[str] = None, *, n_classes: Optional[int] = None,
                 hidden: Sequence[int] = DEFAULT_HIDDEN, lr: float = 1e-3, seed: int = 0) -> None:
        self.feature_name, self._feature_module = find_features(model, features)
        self.hidden = tuple(int(h) for h in hidden)
        if len(self.hidden) < 2 or any(h < 1 for h in self.hidden):
            raise ValueError(f"ncp_hidden must be two or more positive widths, but got {tuple(hidden)}.")
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < float("inf")):
            raise ValueError(f"ncp_lr must be a positive finite number, but got {lr!r}.")
        n_classes = check_optional_positive_int("ncp_classes", n_classes, minimum=2)
        self.lr = float(lr)
        self.seed = int(seed)
        self.n_classes = n_classes
        self.ncp: Optional[NCP] = None
        self._opt: Optional[torch.optim.Optimizer] = None
        self._features: Optional[torch.Tensor] = None
        self._loss_sum: Optional[torch.Tensor] = None
        self._correct: Optional[torch.Tensor] = None
        self._seen = 0
        self._hooks = [self._feature_module.register_forward_hook(self._keep_features)]
        if self.n_classes is None:
            self._hooks.append(model.register_forward_hook(self._read_classes))

    def _keep_features(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if module.training and isinstance(output, torch.Tensor):
            self._features = output.detach()

    def _read_classes(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if self.n_classes is None and isinstance(output, torch.Tensor) and output.dim() >= 2:
            self.n_classes = int(output.shape[-1])

    def train_step(self, targets: torch.Tensor) -> None:
        feats = self._features
        if feats is None:
            raise RuntimeError(
                f"the shadow NCP saw no training forward pass through {self.feature_name!r} since the last step; "
                "call probe.step(targets=yb) after a training step of the model."
            )
        if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.shape[0] != feats.shape[0] \
                or targets.dtype.is_floating_point:
            shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ValueError(f"targets must be the batch's class indices, a 1-D integer tensor of {feats.shape[0]} "
                             f"labels, but got {shape}.")
        self._features = None
        if self.ncp is None:
            if self.n_classes is None:
                raise ValueError("the shadow NCP cannot tell the number of classes; pass ncp_classes=... to the Probe.")
            in_features = int(feats[0].numel())
            self.ncp = _seeded(self.seed, lambda: NCP(in_features, self.n_classes, self.hidden)).to(feats.device)
            self._opt = torch.optim.Adam(self.ncp.parameters(), lr=self.lr)
        targets = targets.to(feats.device)
        with torch.enable_grad():
            out = self.ncp(feats.float())
            loss = nn.functional.cross_entropy(out, targets)
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
        with torch.no_grad():
            n = len(targets)
            batch_loss, batch_correct = loss.detach() * n, (out.argmax(1) == targets).sum()
            self._loss_sum = batch_loss if self._loss_sum is None else self._loss_sum + batch_loss
            self._correct = batch_correct if self._correct is None else self._correct + batch_correct
            self._seen += n

    def epoch_stats(self) -> dict[str, float]:
        """The NCP's mean training loss and accuracy since the last call."""
        if not self._seen:
            return {}
        stats = {"ncp_train_loss": float(self._loss_sum) / self._seen, "ncp_train_acc": float(self._correct) / self._seen}
        self._loss_sum = self._correct = None
        self._seen = 0
        return stats

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
