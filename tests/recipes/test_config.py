"""Configs: presets, YAML files and dotted overrides, checked against the schema with readable errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from modalities.image import ImageTokenizer
from recipes.engine.config import (
    ConfigError,
    check_positive,
    config_to_yaml,
    flatten,
    load_config,
    peek,
    preset_description,
    preset_names,
    save_config,
)
from recipes.tokenizer.config import DataConfig, ImageRecipeConfig, SpeechRecipeConfig

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
    from recipes.tokenizer.config import TrainConfig

    tc = TrainConfig(steps=100, lr=1e-3, schedule="cosine", warmup_steps=10)
    assert tc.lr_at(0) == pytest.approx(1e-4)  # first warm-up step
    assert tc.lr_at(9) == tc.lr_at(10) == pytest.approx(1e-3)  # the peak is lr, not lr times the cosine
    assert tc.lr_at(55) == pytest.approx(5e-4)  # the cosine runs over the 90 steps after the warm-up
    assert tc.lr_at(99) < 1e-6
    assert TrainConfig(lr=2e-4).lr_at(1234) == 2e-4
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")


def test_a_long_warm_up_reaches_the_configured_rate() -> None:
    from recipes.tokenizer.config import TrainConfig

    long = TrainConfig(steps=200, lr=1e-3, schedule="cosine", warmup_steps=150)
    rates = [long.lr_at(step) for step in range(200)]
    assert max(rates) == pytest.approx(1e-3) and rates.index(max(rates)) == 149  # was 26% of lr with 200 of 200
    assert rates[:150] == sorted(rates[:150]) and rates[150:] == sorted(rates[150:], reverse=True)
    constant = TrainConfig(steps=100, lr=1e-3, warmup_steps=10)
    assert constant.lr_at(4) == pytest.approx(5e-4) and constant.lr_at(9) == constant.lr_at(99) == 1e-3
    for warmup in (200, 300):
        with pytest.raises(ValueError, match=rf"train.warmup_steps \({warmup}\) must be fewer than train.steps"):
            TrainConfig(steps=200, schedule="cosine", warmup_steps=warmup)


# ---------------------------------------------------------------------------------------------
# Composition: `defaults` in a YAML file


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_change_only_data_resolves_to_the_preset_except_data(tmp_path: Path, capsys) -> None:
    mine = _yaml(tmp_path / "mine.yaml", "defaults: [tiny]\ndata:\n  name: cifar10_subset\n")
    cfg, tiny = load_config(ImageRecipeConfig, mine), load_config(ImageRecipeConfig, "tiny")
    assert cfg.data == DataConfig(name="cifar10_subset")  # tiny's max_train_images=256 does not carry over
    assert replace(cfg, data=tiny.data) == tiny
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and note.startswith("note: data.name=cifar10_subset")
    assert "preset 'tiny'" in note and "data.max_train_images" in note


def test_defaults_then_own_keys_in_order(tmp_path: Path) -> None:
    _yaml(tmp_path / "fast.yaml", "train:\n  steps: 3\n  lr: 0.01\n")
    mine = _yaml(tmp_path / "mine.yaml", "defaults: [tiny, fast.yaml]\ntrain:\n  lr: 0.02\n")
    cfg = load_config(ImageRecipeConfig, mine, ["model.codebook_size=4"])
    tiny = load_config(ImageRecipeConfig, "tiny")
    assert (cfg.train.steps, cfg.train.lr, cfg.model.codebook_size) == (3, 0.02, 4)
    assert cfg.train.batch_size == tiny.train.batch_size and cfg.name == "tiny"


def test_defaults_chain_with_paths_relative_to_each_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "base").mkdir()
    _yaml(tmp_path / "base" / "small.yaml", "defaults: [image_vqvae]\nmodel:\n  codebook_size: 24\n")
    _yaml(tmp_path / "base" / "short.yaml", "defaults: [small.yaml]\ntrain:\n  steps: 7\n")
    top = _yaml(tmp_path / "top.yaml", "defaults: [base/short.yaml]\nname: top\n")
    monkeypatch.chdir(tmp_path / "base")  # relative to the file, not to the working directory
    cfg = load_config(ImageRecipeConfig, top)
    expected = load_config(ImageRecipeConfig, "image_vqvae", ["model.codebook_size=24", "train.steps=7", "name=top"])
    assert cfg == expected
    assert peek(top, [], "name", None) == "top" and peek(top, [], "modality", None) == "image"


def test_a_preset_inherited_from_gives_the_modality(tmp_path: Path) -> None:
    mine = _yaml(tmp_path / "mine.yaml", "defaults: [speech_tiny]\ntrain:\n  steps: 2\n")
    assert peek(mine, [], "modality", "image") == "speech"
    cfg = load_config(SpeechRecipeConfig, mine)
    assert cfg.train.steps == 2 and cfg.data == load_config(SpeechRecipeConfig, "speech_tiny").data


def test_defaults_cycle_names_the_chain(tmp_path: Path) -> None:
    _yaml(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    _yaml(tmp_path / "b.yaml", "defaults: [tiny, a.yaml]\n")
    with pytest.raises(ConfigError, match=r"cycle: .*a\.yaml → .*b\.yaml → .*a\.yaml\. Remove"):
        load_config(ImageRecipeConfig, tmp_path / "a.yaml")
    _yaml(tmp_path / "self.yaml", "defaults: [self.yaml]\n")
    with pytest.raises(ConfigError, match=r"cycle: .*self\.yaml → .*self\.yaml"):
        peek(tmp_path / "self.yaml", [], "modality", "image")


def test_a_preset_twice_is_not_a_cycle(tmp_path: Path) -> None:
    _yaml(tmp_path / "a.yaml", "defaults: [tiny]\n")
    mine = _yaml(tmp_path / "mine.yaml", "defaults: [a.yaml, tiny]\n")
    assert load_config(ImageRecipeConfig, mine) == load_config(ImageRecipeConfig, "tiny")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "defaults: [tinyy]\n",
            ["unknown preset 'tinyy' (named in the defaults of", "mine.yaml", "Did you mean 'tiny'"],
        ),
        ("defaults: [missing.yaml]\n", ["missing.yaml", "(named in the defaults of", "does not exist"]),
        ("defaults: tiny\n", ["'defaults' in", "must be a list", "defaults: [tiny]"]),
        (
            "defaults: [tiny]\nmodel:\n  codebok_size: 3\n",
            ["unknown config key 'model.codebok_size' (in ", "mine.yaml"],
        ),
    ],
)
def test_bad_defaults_are_clear_errors(tmp_path: Path, text: str, needles: list[str]) -> None:
    mine = _yaml(tmp_path / "mine.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(ImageRecipeConfig, mine)
    for needle in needles:
        assert needle in str(info.value)


def test_an_unknown_key_in_an_inherited_file_names_that_file(tmp_path: Path) -> None:
    _yaml(tmp_path / "base.yaml", "train:\n  stepz: 3\n")
    mine = _yaml(tmp_path / "mine.yaml", "defaults: [base.yaml]\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.stepz' \(in .*base\.yaml\)"):
        load_config(ImageRecipeConfig, mine)


# ---------------------------------------------------------------------------------------------
# Selections: a changed data.name or modality does not merge with settings made for the old choice


def test_changing_data_name_on_the_command_line_resets_the_data_section(capsys) -> None:
    # The command line is one source: its own data keys stay, whatever their order.
    cfg = load_config(ImageRecipeConfig, "tiny", ["data.eval_split=train", "data.name=x", "train.steps=3"])
    assert cfg.data == DataConfig(name="x", eval_split="train")
    assert cfg.train.steps == 3 and cfg.model == load_config(ImageRecipeConfig, "tiny").model
    err = capsys.readouterr().err
    assert err == (
        "note: data.name=x (from the command line) replaces the data section of preset 'tiny' "
        "(data.max_train_images reset to defaults)\n"
    )


def test_a_speech_data_set_does_not_inherit_another_corpus_layout_and_selections(capsys) -> None:
    cfg = load_config(SpeechRecipeConfig, "speech_festival", ["data.name=fsdd"])
    assert cfg.data.layout == "auto" and cfg.data.train.max_index is None and cfg.data.eval.min_index is None
    assert cfg.model == load_config(SpeechRecipeConfig, "speech_festival").model
    err = capsys.readouterr().err
    assert "data.layout" in err and "data.eval.min_index" in err and "preset 'speech_festival'" in err


def test_a_yaml_file_setting_data_keeps_its_own_data_keys(tmp_path: Path) -> None:
    mine = _yaml(
        tmp_path / "mine.yaml",
        "defaults: [fashion_mnist_vqvae]\ndata:\n  name: digits\n  max_train_images: 100\n",
    )
    cfg = load_config(ImageRecipeConfig, mine)
    assert cfg.data == DataConfig(name="digits", max_train_images=100)  # not fashion_mnist's train_minus_val split


def test_the_same_data_name_or_nothing_lost_is_no_reset_and_no_note(capsys) -> None:
    cfg = load_config(ImageRecipeConfig, "tiny", ["data.name=digits"])
    assert cfg.data.max_train_images == 256
    load_config(ImageRecipeConfig, "image_vqvae", ["data.name=fashion_mnist"])  # it only set data.name
    assert capsys.readouterr().err == ""


def test_changing_modality_drops_everything_inherited(tmp_path: Path, capsys) -> None:
    mine = _yaml(tmp_path / "mine.yaml", "defaults: [tiny]\nmodality: speech\nname: mine\n")
    assert peek(mine, [], "modality", "image") == "speech"
    assert load_config(SpeechRecipeConfig, mine) == SpeechRecipeConfig(name="mine")
    assert "modality=speech (in " in capsys.readouterr().err
    cfg = load_config(SpeechRecipeConfig, "image_vqvae", ["modality=speech", "train.steps=5"])
    assert cfg == replace(SpeechRecipeConfig(), train=replace(SpeechRecipeConfig().train, steps=5))
    err = capsys.readouterr().err
    assert err.startswith("note: modality=speech (from the command line) replaces all of preset 'image_vqvae' (")
    assert "data" in err and "model" in err


def test_model_kind_is_not_a_selection() -> None:
    # The image model's other fields (widths, codebook) carry over; num_levels is checked against the kind.
    cfg = load_config(ImageRecipeConfig, "cifar10_vqvae", ["model.kind=vqvae2", "model.num_levels=2"])
    assert cfg.model.in_channels == 3 and cfg.model.codebook_size == 512
    with pytest.raises(ConfigError, match="num_levels"):
        load_config(ImageRecipeConfig, "cifar10_vqvae2", ["model.kind=vqvae"])


# ---------------------------------------------------------------------------------------------
# check_positive


@pytest.mark.parametrize(
    ("value", "optional", "message"),
    [
        (0, False, "train.steps must be positive; got 0."),
        (-1.5, True, "train.steps must be a positive number or null; got -1.5."),
        (True, False, "train.steps must be positive; got True."),
        (None, False, "train.steps must be positive; got None."),
        ("3", False, "train.steps must be positive; got '3'."),
    ],
)
def test_check_positive_rejects(value: object, optional: bool, message: str) -> None:
    class Obj:
        steps = value

    with pytest.raises(ValueError) as info:
        check_positive("train", Obj(), "steps", optional=optional)
    assert str(info.value) == message


def test_check_positive_accepts_and_names_top_level_keys() -> None:
    class Obj:
        a, b, c = 1, 0.5, None

    check_positive("eval", Obj(), "a", "b")
    check_positive("eval", Obj(), "c", optional=True)
    with pytest.raises(ValueError, match=r"^c must be positive; got None\.$"):
        check_positive("", Obj(), "c")
