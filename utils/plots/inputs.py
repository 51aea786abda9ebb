"""Input checks at the entry of the public figure functions.

Numbers may come as tensors, NumPy arrays or nested lists (all become detached tensors on the CPU);
anything else is a TypeError naming the argument and what was expected. Shapes are checked by each
figure, which knows what it draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from utils.validation import as_float_tensor, as_integer, as_real, check_positive_int


def tensor(value, name: str) -> torch.Tensor:
    """`value` as a detached floating-point tensor on the CPU, a copy (figures never modify their inputs):
    floating-point tensors and arrays keep their precision, other numbers become float32."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().cpu().clone()
    return as_float_tensor(value, name, "cpu").clone()


def weights(W, name: str = "W") -> torch.Tensor:
    """`tensor(W)`, refused when it is 3-D with a dimension of size 0 (nothing to draw)."""
    W = tensor(W, name)
    if W.dim() == 3 and 0 in W.shape:
        raise ValueError(f"{name} needs at least one instance, hidden dimension and feature, got {tuple(W.shape)}")
    return W


def named_tensors(values: Mapping, name: str) -> dict[str, torch.Tensor]:
    """A mapping name -> numbers, each converted by `tensor`."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{name} must be a dict name -> values, got {type(values).__name__}")
    return {key: tensor(value, f"{name}[{key!r}]") for key, value in values.items()}


def named_numbers(values: Mapping | None, name: str) -> dict[str, float]:
    """A mapping name -> one finite number each (None for none)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise TypeError(f"{name} must be a dict name -> number, got {type(values).__name__}")
    return {key: as_real(value, f"{name}[{key!r}]") for key, value in values.items()}


def optional_number(value, name: str) -> float | None:
    """None, or a finite number."""
    return None if value is None else as_real(value, name)


def optional_count(value, name: str) -> int | None:
    """None, or a positive integer (0 is refused, not read as "the default")."""
    return None if value is None else check_positive_int(value, name)


def labels(values, name: str) -> list | None:
    """None, or a list of labels (titles, names, colours): a string alone is refused, not split into letters."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of labels, one per item, got {type(values).__name__} {values!r}")
    return list(values)


def instance(index, n_inst: int) -> int:
    """`index` (an int, a NumPy integer or a 0-d integer tensor) as an int in [0, n_inst)."""
    try:
        number = as_integer(index, "instance")
    except TypeError:
        number = None
    if number is None or not 0 <= number < n_inst:
        raise ValueError(f"instance must be an integer in [0, {n_inst}), got {index!r}")
    return number


def two_feature_model(model) -> None:
    """Raise TypeError unless `model` is a model of `utils.models` with tied weights `W`."""
    if not (hasattr(model, "cfg") and isinstance(getattr(model, "W", None), torch.Tensor)):
        raise TypeError(f"model must be a ToyModel or LinearToyModel (2 features -> 1), got {type(model).__name__}")


def points(x, name: str = "x") -> torch.Tensor:
    """`x` as a float32 `(n_points, 2)` tensor on the CPU."""
    x = tensor(x, name)
    if x.dim() != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n_points, 2), got {tuple(x.shape)}")
    return x.float()


def thresholds(value) -> None:
    """Raise TypeError unless `value` is a `utils.motif.MotifThresholds`."""
    from utils.motif import MotifThresholds

    if not isinstance(value, MotifThresholds):
        raise TypeError(f"thresholds must be a utils.motif.MotifThresholds, got {type(value).__name__}")


def frame(table, name: str) -> pd.DataFrame:
    """Raise TypeError unless `table` is a pandas DataFrame."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    return table
