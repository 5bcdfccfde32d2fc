"""nos-symbolic: neural-network optimizers as symbolic formulas.

    >>> from nos_symbolic import parse_rule, SymbolicOptimizer, PowerSign
    >>> rule = parse_rule("exp(sign(g) * sign(m)) * g")     # PowerSign
    >>> rule.canonical_text, rule.latex()
    >>> opt = SymbolicOptimizer(model.parameters(), rule=rule, lr=0.1)
    >>> task = Task("mine", train=(x, y), val=(xv, yv), test=(xt, yt), make_model=make)  # see controller/api.py
"""
from importlib import import_module
from typing import Any

# name -> the module that defines it. Imported on first use (PEP 562), so `import nos_symbolic.parse`
# (what `nos parse` needs) does not pay for torch.
_EXPORTS: dict[str, str] = {
    "NosError": "errors", "RuleError": "errors", "AddSign": "named", "PowerSign": "named",
    "SymbolicOptimizer": "optim", "ReferenceSymbolicOptimizer": "optim_reference",
    "reference_update": "optim_reference", "SettingError": "errors", "EvalConfig": "eval_config", "NAMED_RULES": "registry", "PRIMITIVES": "registry", "REGISTRY": "registry",
    "Primitive": "registry", "Rule": "rule", "parse_rule": "rule", "cosine_decay": "schedules",
    "linear_cosine_decay": "schedules", "linear_decay": "schedules", "noisy_linear_cosine_decay": "schedules",
    "restart_decay": "schedules", "Task": "tasks.task",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nos_symbolic' has no attribute {name!r}")
    value = getattr(import_module(f"nos_symbolic.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
