from pathlib import Path

import pytest
import yaml

from finecliper.config import (
    PRESET_DIR,
    Config,
    apply_override,
    load_config,
    parse_value,
    save_config,
)
from finecliper.errors import ConfigError

PRESET_DATASET = {"demo": "synth"}  # presets not named after their dataset


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_every_preset_validates(preset):
    config = load_config(preset)
    assert config.data.dataset == PRESET_DATASET.get(preset, preset)


def test_preset_by_path_and_overrides():
    config = load_config(
        "configs/dfew.yaml" if Path("configs/dfew.yaml").exists() else PRESET_DIR / "dfew.yaml",
        ["data.fold=3", "train.lr=1e-4", "model.variant=mid", "data.root=/data/DFEW"],
    )
    assert config.data.fold == 3
    assert config.train.lr == pytest.approx(1e-4)
    assert config.model.variant == "mid"
    assert config.data.root == "/data/DFEW"


@pytest.mark.parametrize(
    ("override", "key", "why"),
    [
        ("model.variant=huge", "model.variant", "'base', 'mid', 'high' or 'full'"),
        ("data.fold=7", "data.fold", "less than or equal to 5"),
        ("train.epochs=abc", "train.epochs", "valid integer"),
        ("train.epochs=2.5", "train.epochs", "valid integer"),
        ("train.lr=-1", "train.lr", "greater than 0"),
        ("train.learning_rate=1", "train.learning_rate", "unknown key"),
        ("data.num_workers=true", "data.num_workers", "valid integer"),
    ],
)
def test_bad_values_name_the_key(override, key, why):
    with pytest.raises(ConfigError) as error:
        load_config("dfew", [override])
    assert key in str(error.value)
    assert why in str(error.value)


@pytest.mark.parametrize("override", ["nodots=1", "a.b.c=1", "bogus.x=1", "train.lr"])
def test_malformed_overrides(override):
    with pytest.raises(ConfigError, match=r"override|section"):
        load_config(None, [override])


def test_impossible_combinations():
    with pytest.raises(ConfigError, match=r"data\.fold"):
        load_config("ferv39k", ["data.fold=3"])
    with pytest.raises(ConfigError, match="zero_shot"):
        load_config("dfew", ["model.objective=zero_shot", "model.variant=base"])


def test_parse_value_types():
    assert parse_value("1e-3") == pytest.approx(1e-3)
    assert parse_value("3") == 3 and isinstance(parse_value("3"), int)
    assert parse_value("true") is True
    assert parse_value("null") is None
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("clip_224x224_16f") == "clip_224x224_16f"


def test_override_refuses_non_mapping_section():
    tree = {"data": 5}
    with pytest.raises(ConfigError, match="mapping"):
        apply_override(tree, "data.fold=1")


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="dfew"):
        load_config("no-such-preset")


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("data:\n  datasett: dfew\n")
    with pytest.raises(ConfigError, match=r"data\.datasett: unknown key"):
        load_config(unknown)


def test_resolved_config_round_trips(tmp_path):
    config = load_config("mafw", ["data.fold=2", "train.seed=7"])
    path = save_config(config, tmp_path / "run")
    assert path.name == "config.yaml"
    reloaded = load_config(path)
    assert reloaded == config
    assert yaml.safe_load(path.read_text())["train"]["seed"] == 7
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_defaults_are_valid():
    assert Config().data.num_frames == 16
