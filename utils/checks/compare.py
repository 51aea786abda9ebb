"""Assertions for learner-facing checks.

Every failure says what is wrong and where (which entry, which instance, which feature). A failure
names a likely mistake only when the learner's answer *matches* that mistake: the check computes the
wrong variant and compares, and otherwise states the definition from the exercise text.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import torch

# A learner's valid random draw fails a rate test with probability about 6e-7 (5 standard errors) and
# a uniformity test with probability about 3e-6 (Kolmogorov-Smirnov at 2.6 / sqrt(n)).
SIGMAS = 5.0
KS_CRITICAL = 2.6


def passed(what: str) -> None:
    """Tell the learner that every check of `what` passed."""
    print(f"✅ {what}: all checks passed")


def learner_check(library_version: object, library_name: str) -> Callable:
    """Make a check return what the cells after it should use: `name = checks.check_name(name)`.

    The decorated check returns the learner's object when every check passes, and raises
    AssertionError when one fails. While the learner's stub still raises NotImplementedError it
    prints a "not done yet" line instead and returns `library_version` (called `library_name` in
    the message), so that Run All on an untouched exercise notebook runs to the end.

    The check runs on one CPU thread: its tensors are small, and on a busy machine a second thread
    only spins (measured on a loaded 2-core machine: a loop implementation of exercise 1.4 took
    1.2 s of CPU time on two threads, 0.08 s on one).
    """

    def decorate(check: Callable[[object], None]) -> Callable[[object], object]:
        @functools.wraps(check)
        def run(learner: object) -> object:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                check(learner)
            except NotImplementedError as stub:
                print(
                    f"⏳ not done yet: fill in the stub above ({stub}), then run this cell again. "
                    f"Until then, the cells below use the library's {library_name}."
                )
                return library_version
            finally:
                torch.set_num_threads(threads)
            return learner

        return run

    return decorate


# --- what the learner passed ----------------------------------------------------------------------


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def require_function(fn: object, name: str) -> None:
    """`fn` is a function to call (not the result of calling it, not a class instance)."""
    if not callable(fn) or isinstance(fn, torch.Tensor):
        raise AssertionError(
            f"pass the function `{name}` itself, e.g. `{name} = checks.check_{name}({name})`; got {_describe(fn)} "
            "(the result of calling it?)"
        )


def require_class(cls: object, base: type, methods: tuple[str, ...] = ()) -> None:
    """`cls` is a subclass of `base` (the class itself, not an instance) that defines each of `methods`
    in its own body rather than inheriting the library's."""
    if isinstance(cls, base):
        name = type(cls).__name__
        raise AssertionError(
            f"pass your class itself, not an instance of it: got a {name} object; write `checks.check_...({name})`, "
            f"not `checks.check_...({name}(cfg))`"
        )
    if not isinstance(cls, type):
        raise AssertionError(f"pass your class (a subclass of {base.__name__}), got {_describe(cls)}")
    if not issubclass(cls, base):
        raise AssertionError(
            f"{cls.__name__} must be a subclass of {base.__name__}: write `class {cls.__name__}({base.__name__}):`"
        )
    for method in methods:
        owner = next(klass for klass in cls.__mro__ if method in vars(klass))
        if owner.__module__.split(".")[0] == "utils":
            raise AssertionError(
                f"{cls.__name__} does not define {method}: write it in the class body (it must not inherit "
                f"the library's {owner.__name__}.{method})"
            )


def build(cls: type, *args, **kwargs):
    """`cls(*args, **kwargs)`; an exception becomes an AssertionError that says to keep the parent's __init__."""
    try:
        return cls(*args, **kwargs)
    except Exception as error:
        arguments = ", ".join([*(type(a).__name__ for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        raise AssertionError(
            f"{cls.__name__}({arguments}) raised {type(error).__name__}: {error}; keep the parent's __init__ "
            "(define only the methods the exercise asks for)"
        ) from error


def _argument(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return str(tuple(value.shape))
    text = repr(value)
    return text if len(text) <= 40 else f"<{type(value).__name__}>"


def call_learner(what: str, fn: Callable, *args, **kwargs):
    """`fn(*args, **kwargs)`; an exception other than the stub's NotImplementedError becomes an
    AssertionError naming `what` and the shapes of the arguments."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:
        shown = ", ".join([*(_argument(a) for a in args), *(f"{k}={_argument(v)}" for k, v in kwargs.items())])
        raise AssertionError(f"{what}({shown}) raised {type(error).__name__}: {error}") from error


# --- tensors and values ---------------------------------------------------------------------------


def assert_tensor(actual, name: str, shape: tuple[int, ...], dims: str, dtype: torch.dtype | None = None) -> None:
    """`actual` is a tensor of `shape` (named `dims`, e.g. "(batch, inst, feats)"), of `dtype` when
    given, else of any floating-point dtype (the exercise text does not ask for one)."""
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor, got {type(actual).__name__}")
    if tuple(actual.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(actual.shape)}; expected {dims} = {tuple(shape)}")
    if dtype is not None and actual.dtype != dtype:
        raise AssertionError(f"{name} has dtype {actual.dtype}; expected {dtype}")
    if dtype is None and not actual.is_floating_point():
        raise AssertionError(f"{name} has dtype {actual.dtype}; expected floating-point numbers")


def where(index: tuple[int, ...], dims: str) -> str:
    """`index` named by `dims`, e.g. (0, 2) with "(inst, feats)" -> "inst 0, feats 2"."""
    names = [part.strip() for part in dims.strip("()").split(",") if part.strip()]
    if len(names) != len(index):
        return f"index {index}"
    return ", ".join(f"{n} {i}" for n, i in zip(names, index))


def close(
    actual, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4, compare: torch.Tensor | None = None
) -> bool:
    """Same shape and every entry (of the bool mask `compare`, default all) within `atol + rtol·|expected|`
    (NaN never matches)."""
    if not isinstance(actual, torch.Tensor) or tuple(actual.shape) != tuple(expected.shape):
        return False
    actual = actual.detach().to(device=expected.device, dtype=expected.dtype)
    if expected.dtype == torch.bool:
        good = actual == expected
    else:
        good = (actual - expected).abs() <= atol + rtol * expected.abs()
    return bool(good[compare].all() if compare is not None else good.all())


def matching_mistake(
    actual,
    mistakes: Mapping[str, object] | None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    compare: torch.Tensor | None = None,
) -> str | None:
    """The first message of `mistakes` ({message: wrong value, or a function returning it}) whose wrong
    value `actual` matches (on the entries of `compare`)."""
    for message, wrong in (mistakes or {}).items():
        value = wrong() if callable(wrong) else wrong
        if isinstance(value, torch.Tensor) and close(actual, value, atol, rtol, compare):
            return message
    return None


def assert_close(
    actual,
    expected: torch.Tensor,
    name: str,
    dims: str,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    rule: str = "",
    mistakes: Mapping[str, object] | None = None,
    dtype: torch.dtype | None = None,
    compare: torch.Tensor | None = None,
) -> None:
    """`actual` matches `expected` in type, shape, dtype (see `assert_tensor`) and value.

    A mismatch names the first bad entry, then the likely cause when `actual` matches one of
    `mistakes` ({message: wrong value}), else the definition `rule`.

    Args:
        dims: the dimension names, e.g. "(batch, inst, feats)", used in messages.
        compare: a bool mask of the entries to compare (where the definition applies); default all.
    """
    assert_tensor(actual, name, tuple(expected.shape), dims, dtype)
    value = actual.detach().to(device=expected.device, dtype=expected.dtype)
    if not torch.isfinite(value).all():
        first = tuple(int(i) for i in (~torch.isfinite(value)).nonzero()[0]) if value.dim() else ()
        at = f" (first at {where(first, dims)})" if first else ""
        raise AssertionError(f"{name} contains NaN or infinity{at}")
    bad = (value - expected).abs() > atol + rtol * expected.abs()
    if compare is not None:
        bad &= compare
    if not bad.any():
        return
    first = tuple(int(i) for i in bad.nonzero()[0]) if bad.dim() else ()
    at = f" at {where(first, dims)}" if first else ""
    message = (
        f"{name} is wrong{at}: got {value[first].item():.6g}, expected {expected[first].item():.6g} "
        f"({bad.sum().item()} of {bad.numel() if compare is None else int(compare.sum())} entries differ)"
    )
    cause = matching_mistake(actual, mistakes, atol, rtol, compare)
    if cause:
        raise AssertionError(f"{message}. Likely cause: {cause}")
    raise AssertionError(f"{message}. {rule}" if rule else message)


def assert_differentiable(result: torch.Tensor, wrt: torch.Tensor, expected_grad: torch.Tensor, what: str) -> None:
    """`result` (computed from `wrt`, which requires grad) carries a gradient, and d(result.sum())/d(wrt)
    equals `expected_grad`."""
    if not result.requires_grad or result.grad_fn is None:
        raise AssertionError(
            f"{what} carries no gradient, so training could not backpropagate through it: compute it with torch "
            "operations only (no .detach(), .item(), .numpy() or torch.no_grad())"
        )
    (grad,) = torch.autograd.grad(result.sum(), wrt, allow_unused=True)
    if grad is None or not torch.allclose(grad, expected_grad, atol=1e-6, rtol=1e-4):
        raise AssertionError(f"{what}: its gradient is wrong (part of the computation is cut off from autograd)")


# --- random draws ---------------------------------------------------------------------------------


def rate_tolerance(expected: float, n: int, sigmas: float = SIGMAS) -> float:
    """`sigmas` binomial standard errors of a frequency `expected` over `n` trials (at least 1/n's worth)."""
    return sigmas * math.sqrt(max(expected * (1 - expected), 1.0 / n) / n)


def assert_rate(
    observed: float, expected: float, n: int, what: str, mistakes: Mapping[str, float] | None = None
) -> None:
    """A frequency `observed` over `n` trials is within `SIGMAS` binomial standard errors of `expected`;
    else the failure names the first of `mistakes` ({message: the rate that mistake gives}) that fits."""
    tolerance = rate_tolerance(expected, n)
    if abs(observed - expected) <= tolerance:
        return
    message = f"{what} is {observed:.4f}; expected {expected:.4f} (± {tolerance:.4f} for {n} samples)"
    for cause, rate in (mistakes or {}).items():
        if abs(rate - expected) > tolerance and abs(observed - rate) <= rate_tolerance(rate, n):
            raise AssertionError(f"{message}. Likely cause: {cause}")
    raise AssertionError(message)


def ks_uniform(values: torch.Tensor, low: float, high: float) -> float:
    """The Kolmogorov-Smirnov distance between the sample `values` and the uniform law on [low, high]."""
    x = ((values.detach().flatten().double() - low) / (high - low)).clamp(0, 1).sort().values
    n = x.numel()
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return max((ranks / n - x).max().item(), (x - (ranks - 1) / n).max().item())


def ks_normal(values: torch.Tensor) -> float:
    """The Kolmogorov-Smirnov distance between the sample `values` and the standard normal law."""
    x = values.detach().flatten().double().sort().values
    n = x.numel()
    cdf = 0.5 * (1 + torch.special.erf(x / 2**0.5))
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return max((ranks / n - cdf).max().item(), (cdf - (ranks - 1) / n).max().item())


def assert_uniform(
    values: torch.Tensor,
    low: float,
    high: float,
    what: str,
    mistakes: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """The sample `values` (1-D) looks uniform on [low, high]: range, then a Kolmogorov-Smirnov test.

    A failure states the sample's range, mean, standard deviation and quartiles, and names the first of
    `mistakes` ({message: (a, b)}, a uniform law on [a, b] that the mistake gives) that fits the sample;
    a sample of one or two distinct values is named as such.
    """
    values = values.detach().flatten().double()
    n = values.numel()
    if n == 0:
        raise AssertionError(f"{what}: there are no active values to test")
    critical = KS_CRITICAL / math.sqrt(n)
    lo, hi = values.min().item(), values.max().item()
    q = torch.quantile(values, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    summary = (
        f"{what}: {n} values from {lo:.3g} to {hi:.3g}, mean {values.mean():.3f}, std {values.std():.3f}, "
        f"quartiles {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}; uniform on [{low:g}, {high:g}] has mean "
        f"{(low + high) / 2:g}, "
        f"std {(high - low) / 12**0.5:.3f}, quartiles {low + (high - low) / 4:g} / {(low + high) / 2:g} / "
        f"{low + 3 * (high - low) / 4:g}"
    )
    outside = lo < low or hi > high
    if not outside and ks_uniform(values, low, high) <= critical:
        return
    distinct = values.unique()
    if distinct.numel() <= 2:
        shown = ", ".join(f"{v:g}" for v in distinct.tolist())
        raise AssertionError(
            f"{summary}. Every active value is one of {{{shown}}}: draw a uniform value for each entry"
        )
    for cause, (a, b) in (mistakes or {}).items():
        if lo >= a - 1e-6 and hi <= b + 1e-6 and ks_uniform(values, a, b) <= critical:
            raise AssertionError(f"{summary}. Likely cause: {cause}")
    if ks_normal(values) <= critical:
        raise AssertionError(f"{summary}. Likely cause: the values are standard normal (torch.randn); use torch.rand")
    raise AssertionError(summary)


def assert_independent_activity(active: torch.Tensor, p: torch.Tensor, what: str, names: str = "feature") -> None:
    """Entries of `active: (batch, inst, groups)` are active independently of each other, given their
    probabilities `p: (inst, groups)`: for each instance and pair (a, b), P(a and b) = p_a p_b.

    A failure says which pair, and names the shared draw when P(a and b) is min(p_a, p_b) (one uniform
    number compared with both probabilities).
    """
    n, n_inst, n_groups = active.shape
    both = torch.einsum("nia,nib->iab", active.double(), active.double()) / n
    for k in range(n_inst):
        for a in range(n_groups):
            for b in range(a + 1, n_groups):
                pa, pb = p[k, a].item(), p[k, b].item()
                assert_rate(
                    both[k, a, b].item(),
                    pa * pb,
                    n,
                    f"{what}: the fraction of samples where {names}s {a} and {b} of instance {k} are both active "
                    f"(p = {pa:g} and {pb:g}, independent)",
                    {
                        f"{names}s {a} and {b} share one random draw (e.g. torch.rand(batch, inst, 1) < p): "
                        f"draw one number per {names}": min(pa, pb),
                    },
                )


def assert_independent_values(values: torch.Tensor, active: torch.Tensor, what: str, names: str = "feature") -> None:
    """Active values of `values: (batch, inst, groups)` are uncorrelated between groups, for each instance."""
    n, n_inst, n_groups = values.shape
    for k in range(n_inst):
        for a in range(n_groups):
            for b in range(a + 1, n_groups):
                both = active[:, k, a] & active[:, k, b]
                m = int(both.sum())
                if m < 50:
                    continue
                x, y = values[both, k, a].double(), values[both, k, b].double()
                if x.std() == 0 or y.std() == 0:
                    continue
                correlation = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
                if abs(correlation) > SIGMAS / math.sqrt(m):
                    cause = (
                        f" Likely cause: {names}s {a} and {b} share one value draw; draw a value for each {names}"
                        if correlation > 0.99
                        else ""
                    )
                    raise AssertionError(
                        f"{what}: where {names}s {a} and {b} of instance {k} are both active, their values have "
                        f"correlation {correlation:.3f} over {m} samples; they should be independent.{cause}"
                    )
