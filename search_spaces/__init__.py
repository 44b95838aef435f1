"""Declared candidate families, exported to Optuna (``suggest``) and Ray Tune (``param_space``).

Example:
    >>> from search_spaces import get_space
    >>> space = get_space("cnn")
    >>> import optuna
    >>> study = optuna.create_study()
    >>> config = space.suggest(study.ask())
    >>> sorted(config) == sorted(space.names)
    True
"""

from search_spaces._families import CNN, MLP, RESNET, RESNET_SMALL, activation, classifier
from search_spaces._params import Categorical, Float, Int, Param, SearchSpace

__all__ = ["SPACES", "get_space", "SearchSpace", "Float", "Int", "Categorical", "Param", "activation", "classifier"]

SPACES: dict[str, SearchSpace] = {s.name: s for s in (MLP, CNN, RESNET, RESNET_SMALL)}


def get_space(name: str) -> SearchSpace:
    """The declared family ``name``; a ``ValueError`` lists the valid names otherwise."""
    try:
        return SPACES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown search space {name!r}; choose one of {', '.join(SPACES)}.") from None
