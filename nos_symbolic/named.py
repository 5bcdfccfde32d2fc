"""PowerSign and AddSign (Bello et al. 2017): one line of DSL each, run by SymbolicOptimizer.

    m_t       = beta m_{t-1} + (1 - beta) g
    PowerSign : w <- w (1 - lr wd) - lr * alpha^(f(s) sign(g) sign(m_t)) * g
    AddSign   : w <- w (1 - lr wd) - lr * (alpha + f(s) sign(g) sign(m_t)) * g

Both scale the gradient up where its sign agrees with the running average's and down where it
does not; f (the sign decay: 1, ld, cd or rd, see `nos_symbolic.schedules`) fades that effect over
the run. f is taken at the global step s (the steps already taken, 0-based: 1 at the first step),
as TensorFlow's PowerSignOptimizer and AddSignOptimizer take it, so the updates are theirs step
for step; wd is a decoupled weight decay (0 by default, as TF). With default arguments the rules
are the registry's named rules ``powersign[-D]`` and ``addsign[-D]``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from nos_symbolic.errors import NosError
from nos_symbolic.optim import DEFAULT_BETAS, SymbolicOptimizer
from nos_symbolic.registry import DECAYS

POWERSIGN = "{base}^({f} * sign(g) * sign(m)) * g"
ADDSIGN = "({alpha} + {f} * sign(g) * sign(m)) * g"


def _number(x: float, name: str) -> str:
    """DSL text of a finite number (e for math.e)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise NosError(f"{name} must be a finite number, got {x!r}")
    if x == math.e:
        return "e"
    text = str(int(x)) if float(x).is_integer() else repr(float(x))
    return f"({text})" if x < 0 else text


def _decay(sign_decay: str | None) -> str:
    if sign_decay is None:
        return "1"
    if sign_decay not in DECAYS:
        raise NosError(f"sign_decay must be None or one of {', '.join(DECAYS)}, got {sign_decay!r}")
    return sign_decay


def powersign_rule(base: float = math.e, sign_decay: str | None = None) -> str:
    """DSL text of PowerSign, e.g. ``e^(cd * sign(g) * sign(m)) * g``."""
    if not isinstance(base, bool) and isinstance(base, (int, float)) and base <= 0:
        raise NosError(f"base must be > 0, got {base!r}")
    return POWERSIGN.format(base=_number(base, "base"), f=_decay(sign_decay))


def addsign_rule(alpha: float = 1.0, sign_decay: str | None = None) -> str:
    """DSL text of AddSign, e.g. ``(1 + cd * sign(g) * sign(m)) * g``."""
    return ADDSIGN.format(alpha=_number(alpha, "alpha"), f=_decay(sign_decay))


class PowerSign(SymbolicOptimizer):
    r"""PowerSign: the update :math:`\alpha^{f(t)\,\mathrm{sign}(g)\,\mathrm{sign}(m)}\, g`.

    .. math::

        m_t = \beta m_{t-1} + (1 - \beta) g_t, \qquad
        w_t = w_{t-1}(1 - \mathrm{lr}\,\lambda) - \mathrm{lr}\;
              \alpha^{f(s)\,\mathrm{sign}(g_t)\,\mathrm{sign}(m_t)}\, g_t

    with :math:`\alpha` = ``base`` (e; 2 is also used), :math:`\lambda` = ``weight_decay`` and f = 1
    or the sign decay ld, cd or rd of the global step s = t - 1 over ``total_steps`` T, as
    TensorFlow's PowerSignOptimizer (its ``global_step``). ``maximize`` ascends (g is -grad). The
    optimizer keeps the bias-corrected average
    :math:`\hat m_t = m_t / (1 - \beta^t)`; the correction factor is positive, so
    :math:`\mathrm{sign}(\hat m_t) = \mathrm{sign}(m_t)` and the updates are the paper's.

    >>> import torch
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = PowerSign(model.parameters(), lr=0.1, sign_decay="cd", total_steps=1000)
    >>> opt.rule.text
    'e^(cd * sign(g) * sign(m)) * g'
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.1, base: float = math.e, beta: float = 0.9,
                 sign_decay: str | None = None, total_steps: int | None = None, seed: int = 0,
                 compile: bool = False, *, weight_decay: float = 0.0, maximize: bool = False) -> None:
        super().__init__(params, powersign_rule(base, sign_decay), lr=lr, betas=(beta, *DEFAULT_BETAS[1:]),
                         weight_decay=weight_decay, maximize=maximize, total_steps=total_steps, seed=seed,
                         compile=compile)


class AddSign(SymbolicOptimizer):
    r"""AddSign: the update :math:`(\alpha + f(t)\,\mathrm{sign}(g)\,\mathrm{sign}(m))\, g`.

    .. math::

        m_t = \beta m_{t-1} + (1 - \beta) g_t, \qquad
        w_t = w_{t-1}(1 - \mathrm{lr}\,\lambda) - \mathrm{lr}\;
              (\alpha + f(s)\,\mathrm{sign}(g_t)\,\mathrm{sign}(m_t))\, g_t

    with :math:`\alpha` = ``alpha`` (1), :math:`\lambda` = ``weight_decay`` and f = 1 or the sign
    decay ld, cd or rd of the global step s = t - 1 over ``total_steps`` T, as TensorFlow's
    AddSignOptimizer. As for PowerSign, the bias-corrected average has the sign of m, so the updates
    are the paper's.

    >>> import torch
    >>> model = torch.nn.Linear(3, 1)
    >>> AddSign(model.parameters(), lr=0.1).rule.text
    '(1 + 1 * sign(g) * sign(m)) * g'
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.1, alpha: float = 1.0, beta: float = 0.9,
                 sign_decay: str | None = None, total_steps: int | None = None, seed: int = 0,
                 compile: bool = False, *, weight_decay: float = 0.0, maximize: bool = False) -> None:
        super().__init__(params, addsign_rule(alpha, sign_decay), lr=lr, betas=(beta, *DEFAULT_BETAS[1:]),
                         weight_decay=weight_decay, maximize=maximize, total_steps=total_steps, seed=seed,
                         compile=compile)
