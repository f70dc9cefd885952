"""Experiment configs: YAML files validated into typed models, with dotted command-line overrides.

A config file is one runnable experiment. Its `task:` picks the front end (registered through
`itemrec.experiment.frontend`), whose config class validates the rest. Unknown keys and bad values fail with one
line naming the file and the key; nothing is silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from itemrec.experiment.errors import UserError
from itemrec.experiment.frontend import front_end


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class NamedSpec(BaseModel):
    """`{name: sup_ap, tau: 0.01, ...}`: a component's name and its keyword arguments.

    Used for `loss:` and `model:`. The arguments are checked against the component's signature
    when it is built (`itemrec.experiment.registry.build`), so a misspelled one fails before
    any work starts.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SearchParam(Section):
    """One dimension of a search space (`tune.space`)."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


class TuneSpec(Section):
    """`tune:` section: what `itemrec tune` searches and how."""

    space: dict[str, SearchParam] = Field(default_factory=dict)
    metric: str = "ndcg@20"
    direction: Literal["maximize", "minimize"] = "maximize"
    n_trials: int = Field(20, ge=1)
    timeout: float | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    # The median pruner stops no trial before this epoch (Optuna's n_warmup_steps: a slow starter,
    # a low learning rate, is not judged on its first validation).
    warmup_epochs: int = Field(1, ge=0)
    # A running trial writes a heartbeat every `heartbeat_interval` seconds; one silent for
    # `grace_period` seconds (default 2 × the interval) belongs to a dead worker: it is failed and
    # retried (up to `max_retry` times), from its last checkpoint when there is one.
    heartbeat_interval: int = Field(60, ge=1)
    grace_period: int | None = Field(None, ge=1)
    max_retry: int = Field(3, ge=0)


class ExperimentConfig(Section):
    """Fields every experiment has; each front end's config extends it."""

    task: str
    name: str = ""
    seed: int = 0
    device: str = "auto"
    tune: TuneSpec | None = None

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value != "auto" and not value.startswith(("cpu", "cuda", "mps")):
            raise ValueError(f"must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {value!r}")
        return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """`"loss.tau=0.05"` -> `(["loss", "tau"], 0.05)`; the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"override {text!r}: expected KEY=VALUE, e.g. loss.tau=0.05")
    key, value = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not all(path):
        raise UserError(f"override {text!r}: empty key")
    try:
        return path, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise UserError(f"override {text!r}: value is not valid YAML ({err.problem})") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (in place); sections are created as needed."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a config file into a dict, with one-line errors for the usual mistakes."""
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return raw


def config_class(task: Any, source: str) -> type[ExperimentConfig]:
    """The config class of the front end registered for `task`."""
    return front_end(task, source).config_class


def validate(raw: dict[str, Any], source: str, cls: type[ExperimentConfig] | None = None) -> ExperimentConfig:
    """Validate a raw dict into `cls`, by default its task's config class; errors name the key."""
    cls = cls or config_class(raw.get("task"), source)
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        more = len(err.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise UserError(f"{source}: {key}: {message}{suffix}") from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read, override and validate a config file. The experiment name defaults to the file stem."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides)
    raw.setdefault("name", path.stem)
    return validate(raw, str(path))


def flatten(config: BaseModel | dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"loss.tau": 0.01, ...}`: the config as flat dotted keys (for MLflow params, tuning)."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else config
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML (what a run saves as an artifact and can be rerun from)."""
    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)
