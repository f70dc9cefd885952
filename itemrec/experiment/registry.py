"""Build components (losses, models, ...) from a config's `{name: ..., **params}` sections.

Parameters are checked against the component's constructor by name, so a misspelled key fails
before any work starts, with a message naming the key and listing the known ones.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from itemrec.errors import UserError
from itemrec.experiment.config import NamedSpec
from itemrec.ranking import modules

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
}


def accepted_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of `cls.__init__`, following `**kwargs` into the base classes."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass in (nn.Module, object) or "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__)
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
    settable = [k for k in list(accepted_parameters(cls))[n_args:] if k not in (required or {})]
    for key in spec.params:
        if key not in settable:
            raise UserError(f"{section}.{key}: unknown parameter for {spec.name} (known: {', '.join(settable)})")
    return cls


def build(
    registry: dict[str, type], spec: NamedSpec, section: str, *args: Any, **required: Any
) -> Any:
    """`registry[spec.name](*args, **spec.params, **required)`, with one-line errors naming the key.

    `args` and `required` are what only the caller knows (data sizes, the training matrix);
    they are not settable from the config.
    """
    cls = check_spec(registry, spec, section, len(args), required)
    known = accepted_parameters(cls)
    kwargs = {**spec.params, **{k: v for k, v in required.items() if k in known}}
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"{section}: {spec.name}: {err}") from None


def build_loss(spec: NamedSpec, section: str = "loss", **required: Any) -> nn.Module:
    """The loss module named by `spec` (e.g. `required`: `num_classes`, `dim` for HAPPIER)."""
    return build(LOSSES, spec, section, **required)
