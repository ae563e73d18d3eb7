"""Run directories: locking, atomic files, metrics reading."""

import pytest

from groktransfer import ConfigError, read_metrics
from groktransfer.records import RunDirectory, atomic_write_text


def test_a_second_writer_is_refused_even_with_overwrite(tmp_path):
    first = RunDirectory(tmp_path / "run")
    first.append_metrics("weak", {"step": 0, "train_loss": 1.0, "train_acc": 0.1, "test_loss": 1.0,
                                  "test_acc": 0.1, "weight_norm": 2.0, "elapsed_s": 0.0})
    with pytest.raises(ConfigError, match="in use by another groktransfer process"):
        RunDirectory(tmp_path / "run", overwrite=True)
    assert read_metrics(tmp_path / "run")["weak"][0]["train_acc"] == 0.1  # untouched
    first.close()
    RunDirectory(tmp_path / "run", overwrite=True).close()  # free again once closed


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "a.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_malformed_metrics_give_a_clear_error(tmp_path):
    (tmp_path / "metrics.csv").write_text("stage,step\nweak,0\n")
    with pytest.raises(ConfigError, match="unexpected header"):
        read_metrics(tmp_path)
    good_header = "stage,step,train_loss,train_acc,test_loss,test_acc,weight_norm,elapsed_s\n"
    (tmp_path / "metrics.csv").write_text(good_header + "weak,0,1,0.5,1,0.5,3,0.1\nweak,1,1,0.5\n")
    with pytest.raises(ConfigError, match="line 3 is malformed"):
        read_metrics(tmp_path)


def test_a_row_torn_by_a_kill_is_ignored_when_reading(tmp_path):
    header = "stage,step,train_loss,train_acc,test_loss,test_acc,weight_norm,elapsed_s\r\n"
    (tmp_path / "metrics.csv").write_text(header + "weak,0,1,0.5,1,0.5,3,0.1\r\nweak,1,0.9,0.6,1,0.")
    assert [r["step"] for r in read_metrics(tmp_path)["weak"]] == [0]
