"""Configs: presets, YAML files and dotted overrides, checked against the schema with readable errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from modalities.image import ImageTokenizer
from recipes.engine.config import (
    ConfigError,
    config_to_yaml,
    flatten,
    load_config,
    peek,
    preset_description,
    preset_names,
    save_config,
)
from recipes.image.config import ImageRecipeConfig

# Image side of each data set the presets use (see modalities.image.data).
IMAGE_SIDE = {"digits": 16, "fashion_mnist": 28, "cifar10_subset": 32}


def test_defaults_without_a_source() -> None:
    cfg = load_config(ImageRecipeConfig)
    assert isinstance(cfg, ImageRecipeConfig)
    assert cfg.device == "cpu" and cfg.data.name == "digits"


def test_good_overrides_are_applied_and_typed() -> None:
    cfg = load_config(
        ImageRecipeConfig,
        "tiny",
        ["model.codebook_size=32", "train.lr=1e-3", "train.max_minutes=null", "train.grad_clip=2", "out=runs/x"],
    )
    assert cfg.model.codebook_size == 32
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.train.max_minutes is None
    assert cfg.train.grad_clip == 2.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.out == "runs/x"
    assert cfg.name == "tiny"  # from the preset, untouched


def test_later_overrides_win() -> None:
    cfg = load_config(ImageRecipeConfig, "tiny", ["train.steps=3", "train.steps=5"])
    assert cfg.train.steps == 5


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("model.codebook_sise=3", ["model.codebook_sise", "Did you mean 'model.codebook_size'"]),
        ("modle.codebook_size=3", ["modle", "Did you mean 'model'"]),
        ("train.stepz=3", ["train.stepz", "Keys in section 'train'"]),
    ],
)
def test_unknown_key_is_a_clear_error(override: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(ImageRecipeConfig, "tiny", [override])
    message = str(info.value)
    assert "unknown config key" in message and override in message
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("model.codebook_size=abc", "model.codebook_size", "an integer"),
        ("train.steps=1.5", "train.steps", "an integer"),
        ("data.download=maybe", "data.download", "true or false"),
        ("train.lr=fast", "train.lr", "a number"),
        ("train.max_minutes=soon", "train.max_minutes", "a number (or null)"),
    ],
)
def test_wrong_type_names_key_and_expected_type(override: str, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(ImageRecipeConfig, "tiny", [override])
    message = str(info.value)
    assert f"config key '{key}' expects {expected}" in message
    assert override in message
    assert "\n" not in message


def test_section_given_a_value_says_to_set_its_fields() -> None:
    with pytest.raises(ConfigError, match=r"'model' is a section .*model\.kind="):
        load_config(ImageRecipeConfig, "tiny", ["model=3"])


@pytest.mark.parametrize("override", ["model.codebook_size", "=3", "model..k=3", "--steps=3"])
def test_malformed_override(override: str) -> None:
    with pytest.raises(ConfigError, match="must look like key=value"):
        load_config(ImageRecipeConfig, "tiny", [override])


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model.kind=vqvae3", "ImageTokenizerConfig.kind"),
        ("train.steps=0", "train.steps must be positive"),
        ("device=gpu", "device must be cpu, cuda, cuda:N or auto"),
        ("precision=fp8", "precision must be one of"),
        ("model.num_levels=2", "kind='vqvae' has exactly one level"),
    ],
)
def test_schema_checks_become_config_errors(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="invalid config") as info:
        load_config(ImageRecipeConfig, "tiny", [override])
    assert needle in str(info.value)


def test_unknown_preset_suggests_a_close_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'tinyy'\. Did you mean 'tiny'"):
        load_config(ImageRecipeConfig, "tinyy")


def test_yaml_file_source_and_its_unknown_keys(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("name: mine\nmodel:\n  codebook_size: 24\n")
    cfg = load_config(ImageRecipeConfig, good, ["model.code_dim=4"])
    assert (cfg.name, cfg.model.codebook_size, cfg.model.code_dim) == ("mine", 24, 4)

    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  codebok_size: 24\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model.codebok_size' \(in .*bad.yaml\)"):
        load_config(ImageRecipeConfig, bad)

    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ImageRecipeConfig, tmp_path / "missing.yaml")

    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(ImageRecipeConfig, not_mapping)


def test_saved_config_loads_back_identically(tmp_path: Path) -> None:
    cfg = load_config(ImageRecipeConfig, "image_vqvae2", ["train.max_minutes=2.5", "data.root=/data"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(ImageRecipeConfig, path) == cfg
    assert "codebook_size: 128" in config_to_yaml(cfg)


def test_peek_reads_a_key_before_the_schema_is_known() -> None:
    assert peek("tiny", [], "modality", "x") == "image"
    assert peek("tiny", ["modality=speech"], "modality", "x") == "speech"
    assert peek(None, [], "modality", "image") == "image"


def test_flatten() -> None:
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": None}}}) == {"a": 1, "b.c": 2, "b.d.e": None}


IMAGE_PRESETS = [name for name in preset_names() if peek(name, [], "modality", "image") == "image"]


@pytest.mark.parametrize("name", IMAGE_PRESETS)
def test_every_image_preset_loads_describes_itself_and_fits_its_data(name: str) -> None:
    cfg = load_config(ImageRecipeConfig, name)
    assert preset_description(name), f"preset {name} needs a first-line comment"
    assert cfg.name == name
    side = IMAGE_SIDE[cfg.data.name]
    model = ImageTokenizer(cfg.model)
    shapes = model.level_shapes(side, side)  # raises when the downsampling does not divide the images
    assert len(shapes) == cfg.model.num_levels


def test_the_expected_presets_ship() -> None:
    expected = {
        "tiny",
        "quickstart",
        "image_vqvae",
        "image_vqvae2",
        "fashion_mnist_vqvae",
        "fashion_mnist_15min",
        "cifar10_vqvae",
        "cifar10_vqvae2",
    }
    assert expected <= set(IMAGE_PRESETS)


def test_cosine_schedule_warms_up_and_decays_to_zero() -> None:
    from recipes.image.config import TrainConfig

    tc = TrainConfig(steps=100, lr=1e-3, schedule="cosine", warmup_steps=10)
    assert tc.lr_at(0) == pytest.approx(1e-4)  # first warm-up step
    assert tc.lr_at(9) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert tc.lr_at(50) == pytest.approx(5e-4)
    assert tc.lr_at(99) < 1e-6
    assert TrainConfig(lr=2e-4).lr_at(1234) == 2e-4
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
