"""Which state dicts a `SymbolicOptimizer` loads, and Adam's averages as its m and v.

A SymbolicOptimizer's state dict is torch's layout and nothing more: per parameter ``step`` and
the bias-corrected averages the rule reads (``m``, ``v``, ``y``; ``betas`` too once a scheduler
changed them), per group the hyperparameters, among them ``rule`` (DSL text), ``total_steps`` and
``seed`` (the random draws are a function of seed, parameter index and step). A state dict is
loaded only when every group's rule is the optimizer's rule (same key, whatever the spelling); any
other (another rule's, torch's Adam's) is refused with an error naming both. `adam_state_dict` converts Adam's or AdamW's state instead, explicitly:

    m = exp_avg / (1 - beta1^step),    v = exp_avg_sq / (1 - beta2^step)

so ``m / sqrt(v)`` continues Adam's run.
"""
from __future__ import annotations

from typing import Any

import torch

from nos_symbolic.errors import NosError
from nos_symbolic.rule import Rule, parse_rule

# State keys that tell torch's optimizers apart, for the error message.
_FOREIGN = (({"exp_avg", "exp_avg_sq"}, "torch.optim.Adam's or AdamW's (its state holds exp_avg and exp_avg_sq)"),
            ({"momentum_buffer"}, "torch.optim.SGD's (its state holds momentum_buffer)"),
            ({"square_avg"}, "torch.optim.RMSprop's or Adadelta's (its state holds square_avg)"),
            ({"sum"}, "torch.optim.Adagrad's (its state holds sum)"))


def same_rule(text: Any, rule: Rule) -> bool:
    """Is `text` (a group's "rule") a spelling of `rule`?"""
    if isinstance(text, Rule):
        return text.key == rule.key
    if not isinstance(text, str):
        return False
    if text == rule.text:
        return True
    try:
        return parse_rule(text).key == rule.key
    except NosError:
        return False


def _foreign_description(state_dict: dict[str, Any]) -> str:
    keys = {k for value in state_dict.get("state", {}).values() if isinstance(value, dict) for k in value}
    for marks, description in _FOREIGN:
        if marks <= keys:
            return description
    if "generators" in state_dict:
        return "an older nos-symbolic format (a top-level 'generators' entry), which cannot be resumed"
    return "another optimizer's (no 'rule' in its param_groups)"


def check_loadable(owner: str, rule: Rule, state_dict: dict[str, Any]) -> None:
    """Refuse a state dict that is not one of `rule`'s; `owner` names the optimizer in the message."""
    groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
    if not isinstance(groups, list) or not isinstance(state_dict.get("state"), dict):
        raise NosError(f"not an optimizer state dict (expected 'state' and 'param_groups'), got "
                       f"{type(state_dict).__name__}")
    for group in groups:
        saved = group.get("rule")
        if saved is None:
            hint = (" To start m and v from Adam's averages, call load_adam_state_dict(state_dict)."
                    if "exp_avg" in _foreign_description(state_dict) else "")
            raise NosError(f"cannot load {_foreign_description(state_dict)} state dict into {owner} "
                           f"running rule '{rule.text}'.{hint}")
        if not same_rule(saved, rule):
            raise NosError(f"cannot load the state of rule '{saved}' into {owner} running rule "
                           f"'{rule.text}': its averages and steps belong to the other rule; build the "
                           f"optimizer with rule '{saved}' to resume it")


def adam_state_dict(own: dict[str, Any], adam: dict[str, Any], operands: frozenset[str]) -> dict[str, Any]:
    """`own` (a SymbolicOptimizer's state dict) with the state and hyperparameters of `adam`
    (torch.optim.Adam's or AdamW's, same parameter groups): m and v bias-corrected from exp_avg and
    exp_avg_sq, the step count, lr, beta1, beta2, weight_decay (decoupled only) and maximize."""
    if len(own["param_groups"]) != len(adam.get("param_groups", ())):
        raise NosError(f"Adam's state dict has {len(adam.get('param_groups', ()))} parameter group(s), this "
                       f"optimizer {len(own['param_groups'])}")
    if "y" in operands:
        raise NosError("the rule reads y, the average of g^3, which Adam does not keep")
    groups, state = [], {}
    for ours, theirs in zip(own["param_groups"], adam["param_groups"]):
        if len(ours["params"]) != len(theirs["params"]):
            raise NosError("Adam's parameter groups differ in size from this optimizer's")
        if theirs.get("amsgrad"):
            raise NosError("an amsgrad=True Adam keeps max_exp_avg_sq, which has no counterpart here")
        decay = float(theirs.get("weight_decay", 0.0))
        if decay and not theirs.get("decoupled_weight_decay", False):
            raise NosError("Adam's weight_decay is an L2 term added to the gradient; only AdamW's "
                           "(decoupled) weight decay carries over")
        beta1, beta2 = (float(b) for b in theirs["betas"])
        betas = (beta1, beta2, ours["betas"][2])
        groups.append({**ours, "lr": theirs["lr"], "betas": betas, "weight_decay": decay,
                       "maximize": bool(theirs.get("maximize", False))})
        for mine, index in zip(ours["params"], theirs["params"]):
            entry = adam["state"].get(index)
            if entry:
                state[mine] = _adam_entry(entry, betas, operands)
    return {"state": state, "param_groups": groups}


def _adam_entry(entry: dict[str, Any], betas: tuple[float, float, float],
                operands: frozenset[str]) -> dict[str, Any]:
    step = float(entry["step"])
    out: dict[str, Any] = {"step": torch.tensor(step), "betas": betas}
    if "m" in operands:
        out["m"] = entry["exp_avg"] / (1.0 - betas[0] ** step)
    if "v" in operands:
        out["v"] = entry["exp_avg_sq"] / (1.0 - betas[1] ** step)
    return out
