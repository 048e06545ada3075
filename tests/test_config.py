from pathlib import Path

import pytest

from moodsic_live.config import Config, load_config, set_value
from moodsic_live.errors import MoodsicError


def test_defaults(tmp_path):
    c = Config()
    assert c.perceive.provider == "auto"
    assert c.perceive.detector_range == "short"
    assert c.perceive.video_fps == 5.0
    assert c.paths.models_dir.name == "onnx"


def test_toml_then_cli_overrides(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[perceive]\ndetector_range = "full"\nprovider = "cpu"\ntta_samples = 4\n'
                 '[paths]\nmodels_dir = "~/models"\n')
    c = load_config(f, {"perceive.provider": "auto", "perceive.video_fps": None})
    assert c.perceive.detector_range == "full"
    assert c.perceive.tta_samples == 4
    assert c.perceive.provider == "auto"  # the CLI flag wins over the file
    assert c.perceive.video_fps == 5.0  # an unset flag leaves the value alone
    assert c.paths.models_dir == Path("~/models").expanduser()


@pytest.mark.parametrize("text,match", [
    ('[perceive]\ndetector = "full"\n', "unknown setting 'perceive.detector'"),
    ('[perceive]\ndetector_range = "far"\n', "not one of short, full"),
    ('[perceive]\ntta_samples = "many"\n', "whole number"),
    ('[perceive]\nface_enabled = 3\n', "true or false"),
    ('[perceive\n', "not valid TOML"),
])
def test_bad_config_names_the_setting(tmp_path, text, match):
    f = tmp_path / "config.toml"
    f.write_text(text)
    with pytest.raises(MoodsicError, match=match):
        load_config(f)


def test_explicit_missing_config_is_an_error(tmp_path):
    with pytest.raises(MoodsicError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_set_value_by_dotted_name():
    c = Config()
    set_value(c, "perceive.face_model", "/x/y.onnx")
    assert c.perceive.face_model == Path("/x/y.onnx")
    set_value(c, "perceive.face_model", None)
    assert c.perceive.face_model is None
