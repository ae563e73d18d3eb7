"""Progress: a bar on a terminal, a few status lines when nobody is watching."""

import io

from groktransfer.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_status_lines_every_few_seconds_when_not_a_terminal(monkeypatch):
    import groktransfer.progress as module

    clock = Clock()
    monkeypatch.setattr(module.time, "perf_counter", clock)
    out = io.StringIO()  # not a TTY
    progress = Progress(1000, "target", stream=out, every_seconds=10)
    for step in range(0, 1001, 10):  # 100 evaluations over 50 seconds
        clock.now = step * 0.05
        progress.update(step, train=0.5, test=0.25)
    progress.close()
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 6  # one every 10 s, plus the last
    assert lines[-1] == "[target] step 1000/1000 train 0.500 test 0.250 20 steps/s"


def test_nothing_is_printed_when_disabled_or_for_a_short_run():
    out = io.StringIO()
    quiet = Progress(10, "weak", enabled=False, stream=out)
    quiet.update(5, test=0.1)
    quiet.close()
    short = Progress(10, "weak", stream=out, every_seconds=10)
    short.update(10, test=0.1)
    short.close()
    assert out.getvalue() == ""


def test_a_demo_run_to_a_file_writes_a_few_lines(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "log"
    with open(log, "w") as handle:
        code = subprocess.call([sys.executable, "-m", "groktransfer.cli", "run", "--preset", "demo", "--out",
                                str(tmp_path / "run"), "scratch.train.max_steps=400", "target.train.max_steps=400"],
                               stdout=handle, stderr=subprocess.STDOUT)
    assert code == 0
    text = log.read_text()
    assert "\r" not in text and len(text) < 5000  # no bar redraws
