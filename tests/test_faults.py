"""Real faults, not simulated ones: a file-size limit (`ulimit -f`), folders this process may not
write (root with its file-permission capabilities dropped, as an ordinary user is), and SIGINT or
SIGTERM at a random moment in every route a run can take. Each command ends with one line and its
exit code, and what was stopped continues exactly."""

import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from groktransfer import read_metrics

from test_resume import CONFIG, comparable, reference, without_time  # noqa: F401  (the fixture too)

CLI = [sys.executable, "-m", "groktransfer.cli"]


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("groktransfer:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- a real file-size limit -------------------------------------------------------------------

def test_a_file_size_limit_mid_run_is_one_line_and_the_run_resumes_exactly(tmp_path, reference):
    """RLIMIT_FSIZE at 90 kB: the weak stage's checkpoints fit under it, the target's first
    (~120 kB) does not. The write fails with EFBIG (Python ignores SIGXFSZ), the command says so
    in one line naming the file and exits 1, no temporary file stays, and `resume` without the
    limit ends exactly where an undisturbed run ends."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (90_000, 90_000))

    done = subprocess.run(CLI + ["run", str(config), "--out", str(out), "--no-progress"], preexec_fn=limit,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    line = one_line_error(done.stderr)
    assert "checkpoint.safetensors" in line and "File too large" in line, line
    assert not list(out.glob("*.tmp"))
    resumed = subprocess.run(CLI + ["resume", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ref_metrics, ref_summary = reference
    assert without_time(read_metrics(out)) == without_time(ref_metrics)
    assert comparable(json.loads((out / "summary.json").read_text())) == comparable(ref_summary)


# --- folders this process may not write ----------------------------------------------------------

SETPRIV = shutil.which("setpriv")
# Root passes every permission check through these capabilities; without them it is refused like a user.
DROP = [SETPRIV, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"] if SETPRIV else None


@pytest.fixture
def locked_down(tmp_path):
    """tmp_path with a read-only folder `ro`, a file `afile`, and the command prefix that runs a
    process without the right to ignore file permissions (skipped where that cannot be arranged)."""
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    (tmp_path / "afile").write_text("a user's file\n")
    if DROP is None:
        pytest.skip("setpriv is not installed")
    probe = subprocess.run(DROP + ["sh", "-c", f"touch {tmp_path / 'ro' / 'x'}"], capture_output=True)
    if probe.returncode == 0:
        (tmp_path / "ro" / "x").unlink()
        pytest.skip("this process cannot give up its right to write read-only folders")
    yield tmp_path
    (tmp_path / "ro").chmod(0o755)


TINY = ["task.p=5", "model.width=8", "model.embed_dim=4", "train.max_steps=20"]
UNWRITABLE = [
    (["run", "--preset", "demo", "--out", "ro/run"], "--out 'ro/run': cannot write in 'ro' (Permission denied)"),
    (["run", "--preset", "demo", "--out", "ro"], "--out 'ro': cannot write in 'ro' (Permission denied)"),
    (["run", "--preset", "demo", "--out", "ro/a/b"], "--out 'ro/a/b': cannot write in 'ro' (Permission denied)"),
    (["run", "--preset", "demo", "--out", "afile/run"], "--out 'afile/run': 'afile' is a file, not a directory"),
    (["run", "--preset", "demo", "--seeds", "2", "--out", "ro"], "--out 'ro': cannot write in 'ro'"),
    (["compare", "--spec", "demo", "--methods", "scratch", "--seeds", "1", "--out", "ro/c"] + TINY,
     "--out 'ro/c': cannot write in 'ro'"),
    (["tune", "--spec", "demo", "--methods", "scratch", "--seeds", "1", "--configs", "1", "--out", "ro"] + TINY,
     "--out 'ro': cannot write in 'ro'"),
    (["reproduce", "fig1b", "--quick", "--out", "ro", "task.p=11"], "--out 'ro': cannot write in 'ro'"),
]


@pytest.mark.parametrize("argv, message", UNWRITABLE, ids=[" ".join(a[:1] + a[-3:])[:60] for a, _ in UNWRITABLE])
def test_an_output_folder_this_process_may_not_write_is_refused_before_anything_starts(locked_down, argv, message):
    done = subprocess.run(DROP + CLI + argv + ["--no-progress"], cwd=locked_down, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in one_line_error(done.stderr)
    assert list((locked_down / "ro").iterdir()) == []
    assert (locked_down / "afile").read_text() == "a user's file\n"


def test_resuming_a_run_whose_folder_became_read_only_is_refused_and_leaves_it_as_it_was(locked_down):
    config = locked_down / "c.yaml"
    config.write_text(yaml.safe_dump(dict(CONFIG, checkpoint={"every_steps": 40, "every_seconds": None})))
    out = locked_down / "run"
    stopped = subprocess.run(CLI + ["run", str(config), "--out", str(out), "--no-progress"],
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (90_000, 90_000)),
                             capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 1, stopped.stderr  # stopped in the target stage, as above
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    out.chmod(0o555)
    try:
        done = subprocess.run(DROP + CLI + ["resume", str(out), "--no-progress"], capture_output=True, text=True,
                              timeout=120)
    finally:
        out.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert f"resume '{out}': cannot write in '{out}' (Permission denied)" in one_line_error(done.stderr)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


# --- SIGINT / SIGTERM at a random moment, in every route ----------------------------------------

LONG = ["task.p=11", "weak.train.max_steps=30", "weak.max_rounds=1", "weak.if_none_ready=transfer_best",
        "weak.train.stop_at_test_acc=null", "target.train.stop_at_test_acc=null",
        "scratch.train.stop_at_test_acc=null", "target.train.max_steps=400000", "scratch.train.max_steps=400000"]
ROUTES = {
    # one run, with a run directory and checkpoints
    "single": ["run", "--preset", "demo", "--out", "OUT"] + LONG,
    # several runs trained as one vmapped batch
    "batch": ["run", "--preset", "demo", "--seeds", "2", "--parallel", "2", "--out", "OUT"] + LONG,
    # a batch group whose runs train one at a time
    "one-at-a-time": ["run", "--preset", "demo", "--seeds", "2", "--parallel", "1", "--out", "OUT"] + LONG,
    # a sweep's batch groups handed to an executor
    "executor": ["compare", "--spec", "demo", "--methods", "scratch,grokfast-ema", "--seeds", "1",
                 "--executor", "local", "--out", "OUT", "task.p=11", "train.max_steps=400000",
                 "train.stop_at_test_acc=null"],
    # the same on a Ray cluster started by the command (its workers go with it)
    "ray": ["compare", "--spec", "demo", "--methods", "scratch,grokfast-ema", "--seeds", "1",
            "--executor", "ray", "--num-cpus", "1", "--out", "OUT", "task.p=11", "train.max_steps=400000",
            "train.stop_at_test_acc=null"],
    # the same through Submitit's local executor: its jobs are cancelled, checkpoint and stop
    "submitit": ["compare", "--spec", "demo", "--methods", "scratch,grokfast-ema", "--seeds", "1",
                 "--executor", "submitit", "--submitit-folder", "OUT-jobs", "--out", "OUT", "task.p=11",
                 "train.max_steps=400000", "train.stop_at_test_acc=null"],
}
RANDOM = random.Random(20261202)  # the moments are random, and the same on every run of the suite
MOMENTS = [(route, sig, RANDOM.uniform(0.0, 2.0)) for route in ROUTES for sig in (signal.SIGINT, signal.SIGTERM)]
# Submitit's jobs are still starting in the first second (the job process ignores SIGTERM until the
# run hears it, the controller drops one sent before it started the job): a stop then once left
# the jobs running for good. These moments always fall in that window.
MOMENTS += [("submitit", signal.SIGINT, delay) for delay in (0.05, 0.3, 0.6)]
# A SIGTERM in a sweep's set-up, before any handler of the package was in place, once killed the
# process at once (exit -15, whatever it was writing); one while Ray started could be dropped by
# Python in an at-fork callback, and the command trained on (groktransfer.stops, tests/test_stops.py).
MOMENTS += [(route, signal.SIGTERM, delay) for route in ("executor", "ray") for delay in (0.05, 0.25)]


@pytest.mark.parametrize("route, sig, delay", MOMENTS, ids=[f"{r}-{s.name}-{d:.2f}s" for r, s, d in MOMENTS])
def test_a_signal_at_a_random_moment_stops_every_route_with_130(tmp_path, route, sig, delay):
    """Once the command has begun its work (its first line of output), wait a random moment, send
    SIGINT or SIGTERM: the process stops within seconds with exit code 130 and one line, and no
    run is marked complete (that a stopped run then resumes exactly: tests/test_resume.py)."""
    if route in ("ray", "submitit"):
        pytest.importorskip(route)
    out = tmp_path / "out"
    argv = [a.replace("OUT", out.as_posix()) for a in ROUTES[route]] + ["--no-progress"]
    # SIGINT at its default: a shell without job control starts a background job (the suite run
    # with `&` from a script) with SIGINT ignored, which its children inherit, and Python then
    # installs no KeyboardInterrupt handler: the SIGINT cases would test the shell, not us.
    proc = subprocess.Popen(CLI + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.readline()  # "[weak] …", "[sweep] …", "[compare] …": the command has begun its work
    assert first.startswith("["), (first, proc.stderr.read() if proc.poll() is not None else "")
    time.sleep(delay)
    assert proc.poll() is None, "the command ended before it could be stopped"
    sent = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert time.time() - sent < 30
    assert "Traceback" not in err and len([x for x in err.splitlines() if x.startswith("groktransfer:")]) == 1, err
    assert not any(json.loads(p.read_text()).get("complete") for p in out.rglob("summary.json"))
    # It says a checkpoint was written only when one was (a run's, or a batch's in its first run directory).
    if "checkpoint written" in err:
        assert any(out.rglob("*checkpoint.safetensors")), err
    if route == "submitit":  # its jobs were stopped too, not left running after the command
        time.sleep(1)
        assert subprocess.run(["pgrep", "-f", f"submitit.*{out}-jobs"], capture_output=True).returncode == 1
