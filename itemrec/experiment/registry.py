"""Build components (losses, models, ...) from a config's `{name: ..., **params}` sections.

Parameters are checked against the component's constructor before any work starts: by name (a
misspelled key fails, listing the known ones), by type (the constructor's annotation) and by
range, each with one line naming the key, e.g. `model.dim: must be >= 1 (got -1)`. A range comes
from the class's own `param_rules` (`{parameter: Rule}`, a class attribute, inherited) where it
declares one, else from `RULES` by parameter name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError
from torch import nn

from itemrec.experiment.config import NamedSpec
from itemrec.experiment.errors import UserError
from itemrec.ranking import dcg_losses, lambda_losses, modules

LOSSES: dict[str, type[nn.Module]] = {
    "sup_ap": modules.SupAPLoss,
    "smooth_ap": modules.SmoothAPLoss,
    "roadmap": modules.ROADMAPLoss,
    "sup_recall_at_k": modules.SupRecallLoss,
    "sup_ndcg": modules.SupNDCGLoss,
    "sup_hap": modules.SupHAPLoss,
    "happier": modules.HAPPIERLoss,
    "calibration": modules.CalibrationLoss,
    "bpr": modules.BPRLoss,
    "sampled_softmax": modules.SampledSoftmaxLoss,
    "cosine_contrastive": modules.CosineContrastiveLoss,
    "bsl": modules.BSLLoss,
    "psl": modules.PSLLoss,
    "llpauc": modules.LLPAUCLoss,
    "sl_at_k": modules.SLatKLoss,
    "log_dcg": dcg_losses.LogDCGLoss,
    "sup_ndcg_at_k": dcg_losses.SupNDCGAtKLoss,
    "lambda_loss_at_k": lambda_losses.LambdaLossAtK,
}


Rule = tuple[str, Callable[[Any], bool]]
POSITIVE: Rule = ("> 0", lambda v: v > 0)
NON_NEGATIVE: Rule = (">= 0", lambda v: v >= 0)
AT_LEAST_ONE: Rule = (">= 1", lambda v: v >= 1)
UNIT: Rule = ("in [0, 1]", lambda v: 0 <= v <= 1)
OPEN_UNIT: Rule = ("in (0, 1)", lambda v: 0 < v < 1)
DROPOUT: Rule = ("in [0, 1)", lambda v: 0 <= v < 1)
COSINE: Rule = ("in [-1, 1] (a cosine similarity)", lambda v: -1 <= v <= 1)
EACH_AT_LEAST_ONE: Rule = ("a list of integers >= 1", lambda v: len(v) > 0 and all(k >= 1 for k in v))

RULES: dict[str, Rule] = {
    # models
    "dim": AT_LEAST_ONE,
    "layers": NON_NEGATIVE,
    "dropout": DROPOUT,
    "fold_in_steps": NON_NEGATIVE,
    "fold_in_lr": POSITIVE,
    "fold_in_l2": NON_NEGATIVE,
    "k": AT_LEAST_ONE,
    # losses
    "tau": POSITIVE,
    "rho": NON_NEGATIVE,
    "delta": NON_NEGATIVE,
    "start": NON_NEGATIVE,
    "temperature": POSITIVE,
    "lam": UNIT,
    "alpha": COSINE,
    "beta": COSINE,
    "margin": COSINE,
    "negative_weight": NON_NEGATIVE,
    "push": NON_NEGATIVE,
    "max_elements": AT_LEAST_ONE,
    "ks": EACH_AT_LEAST_ONE,
    "tau1": POSITIVE,
    "tau2": POSITIVE,
    "score_scale": POSITIVE,
    "kappa": POSITIVE,
}
"""Range of each component parameter, by name; a class's `param_rules` override it (`rule_for`)."""


def rule_for(cls: type, name: str) -> Rule | None:
    """The range of parameter `name` of `cls`: the nearest `param_rules` in its MRO naming it, else `RULES`."""
    for klass in cls.__mro__:
        own = vars(klass).get("param_rules", {})
        if name in own:
            return own[name]
    return RULES.get(name)


def accepted_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of `cls.__init__`, following `**kwargs` into the base classes."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass in (nn.Module, object) or "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__, eval_str=True)
        for name, p in signature.parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params.setdefault(name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return params


def check_spec(
    registry: dict[str, type], spec: NamedSpec, section: str, n_args: int = 0, required: dict | None = None
) -> type:
    """The class `spec` names, after checking its parameters by name (nothing is built).

    The first `n_args` constructor parameters and the `required` ones are supplied by the
    caller, so the config may not set them.
    """
    if spec.name not in registry:
        raise UserError(f"{section}.name: unknown {section} {spec.name!r} (known: {', '.join(sorted(registry))})")
    cls = registry[spec.name]
    checked_params(cls, spec, section, n_args, required)
    return cls


def checked_params(
    cls: type, spec: NamedSpec, section: str, n_args: int = 0, required: dict | None = None
) -> dict[str, Any]:
    """`spec.params` checked by name, type and range, converted to the annotated types."""
    accepted = accepted_parameters(cls)
    settable = [k for k in list(accepted)[n_args:] if k not in (required or {})]
    out = {}
    for key, value in spec.params.items():
        if key not in settable:
            raise UserError(f"{section}.{key}: unknown parameter for {spec.name} (known: {', '.join(settable)})")
        out[key] = _check_value(cls, accepted[key], value, f"{section}.{key}")
    return out


def _check_value(cls: type, param: inspect.Parameter, value: Any, where: str) -> Any:
    given, annotation = value, param.annotation
    if annotation is not inspect.Parameter.empty and annotation is not Any:
        try:
            value = TypeAdapter(annotation).validate_python(value)
        except ValidationError as err:
            raise UserError(f"{where}: must be {_type_message(err)} (got {given!r})") from None
    rule = rule_for(cls, param.name)
    if rule is not None and value is not None:
        text, holds = rule
        if not holds(value):
            raise UserError(f"{where}: must be {text} (got {given!r})")
    return value


def _type_message(err: ValidationError) -> str:
    """What the value should be, from pydantic's first error: `a valid integer`, `'a' or 'b'`."""
    first = err.errors()[0]
    message = first["msg"].removeprefix("Input should be ")
    return message if first["type"] == "literal_error" else message.split(",")[0]


def build(
    registry: dict[str, type], spec: NamedSpec, section: str, *args: Any, **required: Any
) -> Any:
    """`registry[spec.name](*args, **spec.params, **required)`, with one-line errors naming the key.

    `args` and `required` are what only the caller knows (data sizes, the training matrix);
    they are not settable from the config.
    """
    cls = check_spec(registry, spec, section, len(args), required)
    known = accepted_parameters(cls)
    params = checked_params(cls, spec, section, len(args), required)
    kwargs = {**params, **{k: v for k, v in required.items() if k in known}}
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"{section}: {spec.name}: {err}") from None


def build_loss(spec: NamedSpec, section: str = "loss", **required: Any) -> nn.Module:
    """The loss module named by `spec` (e.g. `required`: `num_classes`, `dim` for HAPPIER)."""
    return build(LOSSES, spec, section, **required)
