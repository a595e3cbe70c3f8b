"""Run configuration: typed sections, YAML presets and ``key=value`` overrides.

A run is configured by a preset (``configs/dfew.yaml``, or just ``dfew``) plus overrides such as
``data.fold=2 model.variant=full``. Every value is validated against the typed sections; an unknown
key, a wrong type or an impossible value raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from finecliper.config_base import Section
from finecliper.data.config import DataConfig
from finecliper.errors import ConfigError
from finecliper.io import read_text, write_text
from finecliper.model.config import ModelConfig

PRESET_DIR = Path(__file__).parent / "configs"
# ASCII digits only: int() would also read other scripts' digits ("٣" as 3).
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", re.ASCII)


class TrainConfig(Section):
    """The ``train`` section (docs/method.md section 3); the data and model sections live with their
    stages, this one here so the library layers need not import the training program."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    effective_batch_size: int | None = Field(
        None, ge=1, description="reached by gradient accumulation when larger than batch_size"
    )
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_epochs: float = Field(1.0, ge=0.0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    compile: bool = False
    grad_checkpointing: bool = False
    out_dir: str = "runs"
    tensorboard: bool = False


class Config(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check_consistency(self) -> Config:
        if self.data.dataset == "ferv39k" and self.data.fold not in (None, 1):
            raise ValueError("data.fold: FERV39k has one fixed split; use data.fold=null")
        if self.model.objective == "zero_shot" and self.model.variant not in ("high", "full"):
            raise ValueError("model.objective: zero_shot needs the description branch (high/full)")
        return self


def preset_path(name_or_path: str | Path) -> Path:
    """Resolve a preset name (``dfew``) or a YAML file path to an existing preset file.

    A path (anything with a folder or a .yaml/.yml suffix) must exist: falling back to the
    built-in preset of the same name would silently run another config than the one named.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise ConfigError(f"config {name_or_path!s}: no such file (presets: {known})")
    candidate = PRESET_DIR / f"{path.name}.yaml"
    if candidate.is_file():
        return candidate
    raise ConfigError(f"config {name_or_path!s}: no such file or preset (presets: {known})")


def parse_value(text: str) -> Any:
    """Parse an override value as YAML, also accepting numbers such as ``1e-3``."""
    if _NUMBER.match(text.strip()):
        number = float(text)
        return int(text) if re.fullmatch(r"[+-]?\d+", text.strip(), re.ASCII) else number
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {exc}") from exc


def apply_override(tree: dict[str, Any], override: str) -> None:
    """Set ``section.key=value`` in a nested dict, refusing paths that are not sections."""
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value, e.g. data.fold=2")
    key, value = override.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {override!r}: key must be section.name, e.g. train.lr")
    section, name = parts
    if section not in Config.model_fields:
        sections = ", ".join(Config.model_fields)
        raise ConfigError(f"unknown config section {section!r} in {key!r} (sections: {sections})")
    node = tree.setdefault(section, {})
    if not isinstance(node, dict):
        raise ConfigError(f"config section {section!r} must be a mapping")
    node[name] = parse_value(value)


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "config"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}: {error['msg']}{shown}"


def build_config(tree: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a preset (or the defaults), apply ``key=value`` overrides, validate."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if preset is not None:
        path = preset_path(preset)
        source = str(path)
        try:
            loaded = yaml.safe_load(read_text(path))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        tree = loaded or {}
    for override in overrides or []:
        apply_override(tree, override)
    return build_config(tree, source)


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_config(config: Config, out_dir: str | Path) -> Path:
    """Write the resolved config next to a run's outputs (atomically)."""
    path = Path(out_dir) / "config.yaml"
    write_text(path, config_to_yaml(config))
    return path
