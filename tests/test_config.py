"""Config validation, overrides and file reading."""

import pytest

from groktransfer import ConfigError, RunConfig, TrainConfig, from_dict, load_preset, preset_names
from groktransfer.config import apply_overrides, load_config_file


def test_every_preset_loads():
    assert {"demo", "classic", "fig1b", "fig6a", "fig6b"} <= set(preset_names())
    for name in preset_names():
        assert isinstance(load_preset(name), RunConfig)


def test_paper_settings_in_presets():
    fig1b = load_preset("fig1b")
    assert (fig1b.task.p, fig1b.task.train_fraction) == (113, 0.25)
    assert (fig1b.target.model.init_scale, fig1b.target.train.lr, fig1b.target.train.weight_decay) == (0.3, 0.005, 3.0)
    assert (fig1b.scratch.train.lr, fig1b.scratch.train.weight_decay) == (0.05, 3.0)
    assert fig1b.target.model.width == 512
    # The paper's weak stage is the -printed preset: one weak FNN 4/16, 10^4 steps, transferred whatever it became.
    for name in ("fig1b", "fig6a", "fig6b"):
        printed, ours = load_preset(f"{name}-printed"), load_preset(name)
        assert printed.weak.train.max_steps == 10_000 and printed.weak.train.stop_at_test_acc is None
        assert (printed.weak.model.embed_dim, printed.weak.model.width) == (4, 16)
        assert (printed.weak.population, printed.weak.max_rounds, printed.weak.if_none_ready) == (1, 1, "transfer_best")
        # Ours is groktransfer's default weak stage, so the figures show what a user of the defaults gets.
        assert ours.weak == type(ours.weak)()
        assert not printed.weak.stop_when_ready
        # Only the weak stage differs.
        assert (ours.target, ours.scratch, ours.task) == (printed.target, printed.scratch, printed.task)
    assert load_preset("fig6b").task.op == "mul"
    # fig1b-frac20: Fig. 1(b) with 20% of the pairs (where scratch groks at the paper's width), the
    # study's weak rounds of 2,500 steps, otherwise the printed target and scratch settings.
    frac20 = load_preset("fig1b-frac20")
    assert frac20.task.train_fraction == 0.2 and frac20.weak.train.max_steps == 2500
    assert (frac20.target, frac20.scratch) == (fig1b.target, fig1b.scratch)


def test_overrides_are_typed_and_nested():
    config = load_preset("demo", ["target.train.lr=0.02", "task.p=53", "scratch=null", "target.train.betas=[0.9, 0.98]"])
    assert config.target.train.lr == 0.02 and config.task.p == 53 and config.scratch is None
    assert config.target.train.betas == (0.9, 0.98)


def test_int_is_accepted_where_a_float_is_expected():
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["target.train.lrr=1"], "target.train.lrr: unknown key; allowed: lr, weight_decay"),
        (["target.train.lr=-1"], "target.train.lr: got -1.0; must be > 0"),
        (["target.train.lr=fast"], "target.train.lr: got 'fast'; expected a number"),
        (["task.p=7.5"], "task.p: got 7.5; expected an integer"),
        (["task.op=pow"], "task.op: got 'pow'; allowed: add, sub"),
        (["target.model.bias=1"], "target.model.bias: got 1; expected true or false"),
        (["target.train.dtype=float16"], "target.train.dtype: got 'float16'; allowed: 'float32', 'float64'"),
        (["target.train.betas=[0.9]"], "target.train.betas: got [0.9]; expected a list of 2 numbers"),
        (["weak=null"], "target: needs a weak stage"),
        (["task.lr"], "expected key=value"),
        (["target.train.lr.x=1"], "target.train.lr is not a section"),
        (["weak=3"], "weak: expected a mapping"),
    ],
)
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_preset("demo", overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_config_files_parse_safely(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_config_file(bad)
    code = tmp_path / "code.yaml"
    code.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_config_file(code)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config_file(scalar)


def test_round_trip_through_dict():
    config = load_preset("fig6a")
    assert from_dict(RunConfig, config.to_dict()) == config
    assert apply_overrides(config.to_dict(), []) == config.to_dict()


def test_scientific_notation_is_a_number_on_the_command_line_and_in_files(tmp_path):
    # PyYAML reads "1e-3" (no decimal point) as a string; a user means 0.001.
    config = load_preset("demo", ["target.train.lr=1e-3", "target.train.eps=1E-10", "weak.train.lr=2.5e+1"])
    assert (config.target.train.lr, config.target.train.eps, config.weak.train.lr) == (0.001, 1e-10, 25.0)
    path = tmp_path / "c.yaml"
    path.write_text("scratch:\n  train: {lr: 3e-4, weight_decay: 1e0}\n")
    loaded = from_dict(RunConfig, load_config_file(path))
    assert (loaded.scratch.train.lr, loaded.scratch.train.weight_decay) == (3e-4, 1.0)
    with pytest.raises(ConfigError, match="expected an integer"):
        load_preset("demo", ["task.p=1e2"])  # integers stay integers
