"""Run directories: locking, atomic files, metrics reading."""

import json

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


# --- never delete what groktransfer did not write --------------------------------------------

def _user_folder(path):
    path.mkdir()
    (path / "thesis.tex").write_text("years of work")
    return path


@pytest.mark.parametrize("command", [
    ["run", "--preset", "demo", "task.p=11", "weak.train.max_steps=2", "target.train.max_steps=2",
     "scratch.train.max_steps=2", "--no-progress"],
    ["run", "--preset", "demo", "task.p=11", "weak.train.max_steps=2", "target.train.max_steps=2",
     "scratch.train.max_steps=2", "--seeds", "2", "--no-progress"],
    ["reproduce", "fig1b", "--quick", "task.p=11", "--no-progress"],
])
def test_overwrite_never_deletes_a_folder_groktransfer_did_not_write(tmp_path, command, capsys):
    from groktransfer.cli import main

    out = _user_folder(tmp_path / "mine")
    assert main(command + ["--out", str(out), "--overwrite"]) == 2
    assert "was not written by groktransfer" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


@pytest.mark.parametrize("command,where", [
    (["run", "--preset", "demo", "task.p=11", "weak.train.max_steps=2", "target.train.max_steps=2",
      "scratch.train.max_steps=2", "weak.if_none_ready=transfer_best", "--no-progress"], "notes.txt"),
    (["run", "--preset", "demo", "task.p=11", "weak.train.max_steps=2", "target.train.max_steps=2",
      "scratch.train.max_steps=2", "weak.if_none_ready=transfer_best", "--seeds", "2", "--no-progress"],
     "seed1/analysis.ipynb"),
    (["reproduce", "fig1b", "--quick", "task.p=11", "weak.train.max_steps=2", "weak.max_rounds=1",
      "weak.if_none_ready=transfer_best", "target.train.max_steps=2", "scratch.train.max_steps=2", "--no-progress"],
     "run/README.md"),
])
def test_overwrite_keeps_a_groktransfer_folder_that_holds_a_users_file(tmp_path, command, where, capsys):
    """A user's file put into a directory groktransfer wrote (its top or a run inside it) is not
    groktransfer's to delete: --overwrite refuses with one line, exit code 2, and every file,
    the package's and the user's, stays as it was; without the file, the same command replaces it."""
    from groktransfer.cli import main

    out = tmp_path / "out"
    assert main(command + ["--out", str(out)]) == 0
    capsys.readouterr()
    (out / where).write_text("the user's own")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert main(command + ["--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "groktransfer did not write" in err and where in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before
    (out / where).unlink()
    assert main(command + ["--out", str(out), "--overwrite"]) == 0
    assert (out / ".groktransfer").is_file()


def test_overwrite_judges_files_by_name_at_every_depth(tmp_path):
    from groktransfer.records import claim_dir, foreign_entries, remove_owned

    out = claim_dir(tmp_path / "ours")
    for name in ("summary.json", "seed3/metrics.csv", "seed3/tensorboard/target/events.out.tfevents.1.host",
                 "runs/one-hot/accuracy.png", "weak/step000100.safetensors", "fig7.png", "config.yaml.tmp"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("written by groktransfer")
    assert foreign_entries(out) == []
    (out / "runs" / "one-hot" / "data.npy").write_text("a user's data")
    (out / "link").symlink_to(tmp_path)
    assert [str(p.relative_to(out)) for p in foreign_entries(out)] == ["link", "runs/one-hot/data.npy"]
    with pytest.raises(ConfigError, match=r"holds 2 file\(s\) groktransfer did not write \(link, runs/one-hot/data.npy\)"):
        remove_owned(out)
    assert (out / "runs" / "one-hot" / "data.npy").is_file() and (out / "summary.json").is_file()
    (out / "link").unlink()
    (out / "runs" / "one-hot" / "data.npy").unlink()
    remove_owned(out)
    assert list(out.iterdir()) == []


def test_overwrite_refuses_the_working_directory(tmp_path, monkeypatch, capsys):
    from groktransfer.cli import main

    monkeypatch.chdir(_user_folder(tmp_path / "here"))
    (tmp_path / "here" / ".groktransfer").write_text("even a forged marker")
    assert main(["run", "--preset", "demo", "--out", ".", "--overwrite", "--no-progress"]) == 2
    assert "working directory" in capsys.readouterr().err
    assert (tmp_path / "here" / "thesis.tex").is_file()


def test_a_refused_setting_deletes_nothing(tmp_path, capsys):
    """reproduce --overwrite checks every setting (here a device this machine lacks) before it
    deletes the earlier reproduction."""
    import torch
    from groktransfer.cli import main
    from groktransfer.records import claim_dir

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    out = claim_dir(tmp_path / "earlier")
    (out / "claim.json").write_text("{}")
    assert main(["reproduce", "fig1b", "--out", str(out), "--overwrite", "device=cuda", "--no-progress"]) == 2
    assert (out / "claim.json").is_file()


def test_overwrite_replaces_what_groktransfer_wrote(tmp_path):
    from groktransfer.records import OWNER_FILE, claim_dir, remove_owned

    out = claim_dir(tmp_path / "ours")
    (out / "summary.json").write_text("{}")
    (out / "seed0").mkdir()
    remove_owned(out)
    assert [p.name for p in out.iterdir()] == []
    assert not (out / OWNER_FILE).exists()


def test_overwrite_refuses_a_sweep_with_a_live_run_inside(tmp_path):
    from groktransfer.records import claim_dir, remove_owned

    out = claim_dir(tmp_path / "sweep")
    live = RunDirectory(out / "seed0")  # holds its lock, as a live run does
    (out / "seed1").mkdir()
    with pytest.raises(ConfigError, match="in use by another groktransfer process"):
        remove_owned(out)
    assert (out / "seed0").is_dir() and (out / "seed1").is_dir()
    live.close()
    remove_owned(out)
    assert list(out.iterdir()) == []


def test_drop_run_weights_deletes_only_the_package_files_of_its_finished_runs(tmp_path):
    from groktransfer.records import LOCK_FILE, OWNER_FILE, WEIGHT_FILES, drop_run_weights

    def make(path, owned, finished):
        path.mkdir(parents=True)
        for name in (*WEIGHT_FILES, "metrics.csv", "mine.safetensors"):
            (path / name).write_text("x")
        if owned:
            (path / OWNER_FILE).write_text("x")
        if finished:
            (path / "summary.json").write_text("{}")

    make(tmp_path / "runs" / "a" / "seed0", owned=True, finished=True)
    make(tmp_path / "runs" / "a" / "seed1", owned=True, finished=False)  # still being written
    make(tmp_path / "theirs", owned=False, finished=True)  # not groktransfer's
    drop_run_weights(tmp_path)
    done = tmp_path / "runs" / "a" / "seed0"
    assert sorted(p.name for p in done.iterdir()) == sorted([LOCK_FILE, OWNER_FILE, "metrics.csv",
                                                             "mine.safetensors", "summary.json"])
    for kept in (tmp_path / "runs" / "a" / "seed1", tmp_path / "theirs"):
        assert all((kept / name).exists() for name in WEIGHT_FILES)


SUMMARY_DAMAGE = [
    ("[]", "expected a JSON object, got list"),
    ("{bad", "unreadable"),
    ('{"complete": "yes", "stages": {}}', "complete: expected true or false, got 'yes'"),
    ('{"complete": true, "stages": 3}', "stages: expected an object, got int"),
    ('{"complete": true, "stages": {"scratch": {}}}', "stages.scratch: status is missing"),
]


@pytest.mark.parametrize("text, message", SUMMARY_DAMAGE, ids=[m for _, m in SUMMARY_DAMAGE])
def test_a_damaged_summary_is_refused_with_one_line_naming_it(tmp_path, text, message):
    from groktransfer.records import read_summary

    (tmp_path / "summary.json").write_text(text)
    with pytest.raises(ConfigError) as refused:
        read_summary(tmp_path / "summary.json")
    assert "summary.json" in str(refused.value) and message in str(refused.value) and "\n" not in str(refused.value)


def test_a_sweep_rewrites_a_damaged_summary_from_its_checkpoint(tmp_path, monkeypatch):
    """compare's reuse reads each finished run's summary.json through read_summary; a damaged one
    is not reused as it is, but written again from the run's checkpoint (no training)."""
    from groktransfer.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--spec", "demo", "--methods", "scratch", "--seeds", "1", "--out", "c", "--no-progress",
            "task.p=5", "model.width=8", "model.embed_dim=4", "train.max_steps=20"]
    assert main(argv) == 0
    summary = tmp_path / "c" / "runs" / "scratch" / "seed0" / "summary.json"
    good = json.loads(summary.read_text())
    for text, _ in SUMMARY_DAMAGE:
        summary.write_text(text)
        assert main(argv) == 0
        assert json.loads(summary.read_text())["stages"] == good["stages"]


@pytest.mark.parametrize("command, files", [
    (["compare", "--spec", "demo", "--methods", "scratch", "--seeds", "1"], ["table.md", "runs.csv"]),
    (["tune", "--spec", "demo", "--methods", "scratch", "--seeds", "1", "--configs", "1"], ["best.yaml"]),
])
def test_a_sweep_never_replaces_a_users_files_in_its_out_folder(tmp_path, monkeypatch, capsys, command, files):
    """compare and tune write fixed names (table.md, runs.csv, best.yaml, ...) into --out: a folder
    holding files groktransfer did not write is refused; its own folder, marked or holding its
    record from before the marker existed, is reused."""
    from groktransfer.cli import main
    from groktransfer.records import OWNER_FILE

    monkeypatch.chdir(tmp_path)
    tiny = ["--no-progress", "task.p=5", "model.width=8", "model.embed_dim=4", "train.max_steps=20"]
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in files:
        (mine / name).write_text("a user's file\n")
    capsys.readouterr()
    assert main(command + ["--out", "mine"] + tiny) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files groktransfer did not write" in err[0], err
    assert sorted(p.name for p in mine.iterdir()) == sorted(files)
    assert all((mine / name).read_text() == "a user's file\n" for name in files)
    assert main(command + ["--out", "ours"] + tiny) == 0 and (tmp_path / "ours" / OWNER_FILE).is_file()
    (tmp_path / "ours" / OWNER_FILE).unlink()  # as a folder written before the marker existed
    assert main(command + ["--out", "ours"] + tiny) == 0
    # A folder holding only folders groktransfer wrote (the comparison scripts write tune/ inside
    # the comparison's folder) is taken; one of them named like the sweep's own runs/, or a
    # user's file beside them, is not.
    beside = tmp_path / "beside"
    assert main(command + ["--out", "beside/tune"] + tiny) == 0
    assert main(command + ["--out", "beside"] + tiny) == 0 and (beside / OWNER_FILE).is_file()
    for extra in ("runs", "notes.txt"):
        other = tmp_path / f"other-{extra}"
        assert main(command + ["--out", str(other / "tune")] + tiny) == 0
        if extra == "runs":
            assert main(command + ["--out", str(other / "runs")] + tiny) == 0
        else:
            (other / extra).write_text("a user's file\n")
        before = sorted(p.relative_to(other) for p in other.rglob("*"))
        capsys.readouterr()
        assert main(command + ["--out", str(other)] + tiny) == 2
        assert "holds files groktransfer did not write" in capsys.readouterr().err
        assert sorted(p.relative_to(other) for p in other.rglob("*")) == before


def test_overwrite_refuses_a_folder_it_cannot_read_inside(tmp_path, monkeypatch):
    """A folder inside that this process may not list could hold anything: nothing is deleted."""
    import pathlib

    from groktransfer.records import claim_dir, remove_owned

    out = claim_dir(tmp_path / "ours")
    (out / "summary.json").write_text("{}")
    (out / "seed0").mkdir()
    listing = pathlib.Path.iterdir

    def unreadable(self):
        if self.name == "seed0":
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", unreadable)
    with pytest.raises(ConfigError, match="cannot read .*seed0.* will not delete what it cannot see"):
        remove_owned(out)
    monkeypatch.undo()
    assert (out / "summary.json").is_file() and (out / "seed0").is_dir()
