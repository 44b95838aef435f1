"""The candidate families: ``mlp``, ``cnn``, ``resnet`` and ``resnet_small``, each declared once.

Every model is a :class:`Classifier` with a ``features`` part and a ``head`` (the output layer),
so probes can find the penultimate layer of any of them.
"""

from __future__ import annotations

from typing import Any

from search_spaces._params import Categorical, Float, Int, SearchSpace

__all__ = ["MLP", "CNN", "RESNET", "RESNET_SMALL", "activation", "classifier"]

_COMMON = (
    Float("lr", 1e-4, 1e-1, log=True),
    Float("weight_decay", 1e-6, 1e-2, log=True),
    Float("dropout", 0.0, 0.5),
    Categorical("batch_size", (32, 64, 128, 256)),
    Categorical("optimizer", ("adam", "adamw", "sgd")),
)


def activation(name: str):
    """A new activation module by its name in the spaces (``relu``, ``gelu``, ``tanh``, ``sigmoid``, ``silu``)."""
    from torch import nn

    table = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU}
    return table[name]()


def classifier(features, head):
    """A ``Classifier`` module: ``features`` (ending in a flat vector), then ``head`` (the output layer)."""
    from torch import nn

    class Classifier(nn.Module):
        """``features`` (the backbone, ending in a flat vector) followed by ``head`` (the output layer)."""

        def __init__(self) -> None:
            super().__init__()
            self.features = features
            self.head = head

        def forward(self, x):
            return self.head(self.features(x))

    return Classifier()


def _build_mlp(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    import math

    from torch import nn

    n_in = math.prod(input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    width = config["width"]
    for i in range(config["depth"]):
        layers += [nn.Linear(n_in if i == 0 else width, width), activation(config["activation"]), nn.Dropout(config["dropout"])]
    n_feat = width if config["depth"] > 0 else n_in
    return classifier(nn.Sequential(*layers), nn.Linear(n_feat, n_classes))


def _build_cnn(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    from torch import nn

    one_d = len(input_shape) == 2
    conv, pool, norm = (nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d) if one_d else (nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d)
    adaptive = nn.AdaptiveAvgPool1d(1) if one_d else nn.AdaptiveAvgPool2d(1)
    c_in, c = input_shape[0], config["channels"]
    size = min(input_shape[1:])
    layers: list[nn.Module] = []
    for _ in range(config["depth"]):
        layers += [conv(c_in, c, kernel_size=3, padding=1), norm(c), activation(config["activation"])]
        if size >= 4:
            layers.append(pool(2))
            size //= 2
        c_in, c = c, c * 2
    layers += [adaptive, nn.Flatten(), nn.Dropout(config["dropout"])]
    return classifier(nn.Sequential(*layers), nn.Linear(c_in, n_classes))


def _build_resnet(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    """torchvision's ResNet (BasicBlock) adapted to small inputs: a 3x3 stride-1 stem, no max-pool,
    any number of input channels. ``blocks=2`` is ResNet-18, ``blocks=1`` ResNet-10."""
    from torch import nn
    from torchvision.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, [config["blocks"]] * 4, num_classes=n_classes)
    net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    if config["activation"] != "relu":
        for module in list(net.modules()):
            if hasattr(module, "relu"):
                module.relu = activation(config["activation"])
    features = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool, nn.Flatten(),
        nn.Dropout(config["dropout"]),
    )
    return classifier(features, net.fc)


def _build_resnet_small(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    """The CIFAR-style ResNet of He et al. (2016, §4.2): a 3x3 stem to ``width`` channels, three
    stages of ``blocks`` residual blocks at width, 2x and 4x width (stride 2 entering stages 2 and
    3 while the input is large enough), global average pooling. ``blocks=3, width=16`` is
    ResNet-20. Conv1d for sequences, Conv2d for images."""
    from torch import nn

    one_d = len(input_shape) == 2
    conv, norm = (nn.Conv1d, nn.BatchNorm1d) if one_d else (nn.Conv2d, nn.BatchNorm2d)
    act = config["activation"]

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                conv(c_in, c_out, 3, stride=stride, padding=1, bias=False), norm(c_out), activation(act),
                conv(c_out, c_out, 3, padding=1, bias=False), norm(c_out),
            )
            self.skip = (nn.Identity() if stride == 1 and c_in == c_out
                         else nn.Sequential(conv(c_in, c_out, 1, stride=stride, bias=False), norm(c_out)))
            self.out = activation(act)

        def forward(self, x):
            return self.out(self.body(x) + self.skip(x))

    w, size = config["width"], min(input_shape[1:])
    layers: list[nn.Module] = [conv(input_shape[0], w, 3, padding=1, bias=False), norm(w), activation(act)]
    c_in = w
    for stage in range(3):
        c_out = w * 2**stage
        for b in range(config["blocks"]):
            stride = 2 if stage > 0 and b == 0 and size >= 4 else 1
            size //= stride
            layers.append(Block(c_in, c_out, stride))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool1d(1) if one_d else nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(config["dropout"])]
    return classifier(nn.Sequential(*layers), nn.Linear(c_in, n_classes))


MLP = SearchSpace(
    name="mlp",
    description="fully connected net: flatten, depth x (Linear, activation, dropout), Linear",
    params=_COMMON
    + (
        Int("width", 16, 512, log=True),
        Int("depth", 1, 4),
        Categorical("activation", ("relu", "gelu", "tanh", "sigmoid")),
    ),
    builder=_build_mlp,
    input_ranks=(1, 2, 3),
)

CNN = SearchSpace(
    name="cnn",
    description="small conv net (Conv1d for sequences, Conv2d for images): depth x (conv, BN, act, pool), GAP, Linear",
    params=_COMMON
    + (
        Int("channels", 8, 64, log=True),
        Int("depth", 1, 3),
        Categorical("activation", ("relu", "gelu", "tanh", "sigmoid")),
    ),
    builder=_build_cnn,
    input_ranks=(2, 3),
)

RESNET = SearchSpace(
    name="resnet",
    description="torchvision ResNet-10/18 (BasicBlock) with a 3x3 stride-1 stem and no max-pool, for small images",
    params=_COMMON
    + (
        Categorical("blocks", (1, 2)),
        Categorical("activation", ("relu", "gelu", "silu")),
    ),
    builder=_build_resnet,
    input_ranks=(3,),
)

RESNET_SMALL = SearchSpace(
    name="resnet_small",
    description="CIFAR-style ResNet (He et al. 2016): 3 stages x blocks residual blocks at width/2x/4x, for sequences or images",
    params=_COMMON
    + (
        Int("width", 8, 32, log=True),
        Int("blocks", 1, 3),
        Categorical("activation", ("relu", "gelu", "silu")),
    ),
    builder=_build_resnet_small,
    input_ranks=(2, 3),
)
