"""Params files for isonet run: the Nextflow names, typed; unknown names refused."""

import dataclasses
import json
from pathlib import Path

import pytest

from isonet_steps.cli.run import collect_params
from isonet_steps.core.noise import noise_schedule
from isonet_steps.io.errors import InputError
from isonet_steps.io.params import BY_NAME, read_params_file
from isonet_steps.network.refine import RefineSettings

FAST = Path(__file__).resolve().parents[1] / "conf" / "fast.yaml"


def test_yaml_and_json_params_are_typed(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text("input: tomos/\noutdir: out\ncube_size: 48\nnoise_level: 0.05,0.1\nnoise_start_iter: [3, 6]\n"
                 "halves: true\nlearning_rate: 1e-3\n")
    values = read_params_file(y)
    assert values == {"input": "tomos/", "outdir": "out", "cube_size": 48, "noise_level": (0.05, 0.1),
                      "noise_start_iter": (3, 6), "halves": True, "learning_rate": 0.001}
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"cube-size": "64", "use_deconv_tomo": "false", "crop_size": None}))
    assert read_params_file(j) == {"cube_size": 64, "use_deconv_tomo": False, "crop_size": None}


def test_command_line_overrides_the_file(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text("cube_size: 48\niterations: 5\noutdir: o\n")
    values, places = collect_params(y, {name: None for name in BY_NAME} | {"iterations": 7})
    assert values["cube_size"] == 48 and values["iterations"] == 7 and places == {"outdir": "o"}


@pytest.mark.parametrize("text,needle", [
    ("cube_size: 3.5\n", "cube_size"),
    ("halves: maybe\n", "halves"),
    ("nope: 1\n", "unknown parameter"),
    ("- a\n- b\n", "mapping"),
    ("cube_size: [1\n", "cannot parse"),
])
def test_bad_params_files(tmp_path, text, needle):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(InputError, match=needle):
        read_params_file(p)


def test_fast_schedule_file_sets_only_refine_and_is_valid():
    """conf/fast.yaml (docs/method.md's fast schedule) is a refine schedule refine accepts, noise before the end."""
    values = read_params_file(FAST)
    assert set(values) <= {field.name for field in dataclasses.fields(RefineSettings)}
    settings = RefineSettings(**values)
    settings.validate()
    assert settings.iterations < RefineSettings().iterations and settings.epochs < RefineSettings().epochs
    schedule = noise_schedule(settings.iterations, settings.noise_level, settings.noise_start_iter)
    assert 0 < schedule[settings.iterations] and schedule[1] == 0  # the first iteration trains on the data alone
