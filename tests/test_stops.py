"""A stop whose exception Python drops is still heard (groktransfer.stops).

The drop is real, not simulated: a signal raised inside a finalizer runs its handler there, where
Python can only print "Exception ignored in ..." and go on — what an at-fork callback did to a
SIGTERM sent while Ray started its cluster (the command then trained on for good)."""

import importlib.machinery
import signal
import sys
import threading

import pytest

from groktransfer.config import RunConfig
from groktransfer.executors import ExecutorConfig, Task, run_tasks
from groktransfer.stops import hearing_lost_stops, lost_stop, raise_if_lost
from groktransfer.training import RunInterrupted

from test_resume import CONFIG


def exit_like_ray(signum, frame):
    sys.exit(signum)  # Ray's own SIGTERM handler, installed by ray.init


@pytest.fixture
def ray_like_sigterm():
    previous = signal.signal(signal.SIGTERM, exit_like_ray)
    yield
    signal.signal(signal.SIGTERM, previous)


def drop_a_stop_in_a_finalizer(sig=signal.SIGTERM):
    class Finalized:
        def __del__(self):
            signal.raise_signal(sig)  # its handler runs in here, where Python cannot raise

    Finalized()


@pytest.fixture
def printed(monkeypatch):
    """What reaches the hook that prints a dropped exception (pytest puts its own in Python's)."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(unraisable.exc_type))
    return seen


def test_python_drops_a_stop_raised_in_a_finalizer(ray_like_sigterm, printed):
    """The fault itself, without the package: the SystemExit is handed to be printed, and dropped."""
    drop_a_stop_in_a_finalizer()
    assert printed == [SystemExit]
    assert not lost_stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_dropped_stop_is_recorded_silently_while_hearing(ray_like_sigterm, printed, sig):
    with hearing_lost_stops():
        assert not lost_stop()
        drop_a_stop_in_a_finalizer(sig)
        assert lost_stop()
        with pytest.raises(KeyboardInterrupt, match="stopped"):
            raise_if_lost()
    assert printed == []
    assert not lost_stop()  # a later call in this process starts without the old stop


def test_other_dropped_exceptions_are_printed_as_before_and_are_no_stop(printed):
    class Failing:
        def __del__(self):
            raise ValueError("a finalizer's own bug")

    with hearing_lost_stops():
        Failing()
        assert not lost_stop()
        raise_if_lost()  # nothing to raise
    assert printed == [ValueError]


def test_a_nested_context_keeps_the_outer_ones_record(ray_like_sigterm):
    with hearing_lost_stops():
        drop_a_stop_in_a_finalizer()
        with hearing_lost_stops():
            assert lost_stop()
        assert lost_stop()


def test_a_stop_dropped_in_another_thread_is_not_taken_for_a_signal(printed):
    class Exiting:
        def __del__(self):
            raise SystemExit(3)  # only the main thread runs signal handlers

    with hearing_lost_stops():
        worker = threading.Thread(target=Exiting)
        worker.start()
        worker.join()
        assert not lost_stop()
    assert printed == [SystemExit]


class RayDroppingAStopAtStart:
    """The parts of Ray that the executor calls; ``init`` does what Ray's start did when a SIGTERM
    came: its handler (sys.exit) ran in an at-fork callback and Python dropped the SystemExit."""

    __spec__ = importlib.machinery.ModuleSpec("ray", None)  # what the executor's check for Ray looks at

    def __init__(self):
        self.submitted, self.shut_down = [], False

    def is_initialized(self):
        return False

    def init(self, **options):
        signal.signal(signal.SIGTERM, exit_like_ray)
        drop_a_stop_in_a_finalizer()

    def cluster_resources(self):
        return {"CPU": 2}

    def remote(self, function):
        ray = self

        class Remote:
            def options(self, **options):
                return self

            def remote(self, *args):
                ray.submitted.append(args)
                return object()

        return Remote()

    def wait(self, refs, num_returns, timeout):
        return refs[:1], refs[1:]

    def get(self, ref):
        return []

    def shutdown(self):
        self.shut_down = True


def test_a_stop_dropped_while_ray_starts_stops_the_sweep_before_any_task(monkeypatch, printed):
    fake = RayDroppingAStopAtStart()
    monkeypatch.setitem(sys.modules, "ray", fake)
    previous = signal.getsignal(signal.SIGTERM)
    done = []
    with pytest.raises(KeyboardInterrupt, match="while the Ray cluster started"):
        run_tasks(lambda task: [], [Task([], {})], ExecutorConfig(kind="ray", num_cpus=2),
                  on_done=lambda i, r: done.append(i), on_failed=lambda i, e: done.append(e), log=lambda m: None)
    assert fake.submitted == [] and done == [] and fake.shut_down
    assert signal.getsignal(signal.SIGTERM) is previous  # Ray's handler does not outlive the sweep
    assert printed == []


def test_a_run_after_a_dropped_stop_stops_at_its_first_check(tmp_path, ray_like_sigterm):
    from groktransfer.config import from_dict
    from groktransfer.pipeline import run_experiment

    config = from_dict(RunConfig, CONFIG)
    with hearing_lost_stops():
        drop_a_stop_in_a_finalizer()
        with pytest.raises(RunInterrupted):
            run_experiment(config, tmp_path / "run")
    assert not (tmp_path / "run" / "summary.json").exists() or '"complete": true' not in (
        tmp_path / "run" / "summary.json").read_text()


class SubmititOnSlurm:
    """The parts of Submitit that the executor calls, as on SLURM; a job's first ``done()`` comes
    with a stop that Python drops (in a finalizer) while the command waits."""

    __spec__ = importlib.machinery.ModuleSpec("submitit", None)

    def __init__(self):
        self.cancelled = []
        outer = self

        class Job:
            polls = 0

            def done(self):
                self.polls += 1
                if self.polls == 1:
                    drop_a_stop_in_a_finalizer()
                return False

            def cancel(self, check):
                outer.cancelled.append(self)

        class AutoExecutor:
            cluster = "slurm"

            def __init__(self, folder, cluster=None):
                pass

            def update_parameters(self, **parameters):
                pass

            def submit(self, *args):
                return Job()

        self.AutoExecutor = AutoExecutor


def test_a_stop_dropped_while_submitit_jobs_run_cancels_them(monkeypatch, tmp_path, ray_like_sigterm, printed):
    fake = SubmititOnSlurm()
    monkeypatch.setitem(sys.modules, "submitit", fake)
    with pytest.raises(KeyboardInterrupt):
        run_tasks(lambda task: [], [Task([], {}), Task([], {})],
                  ExecutorConfig(kind="submitit", submitit_folder=str(tmp_path / "jobs"), submitit_cluster="slurm"),
                  on_done=lambda i, r: None, on_failed=lambda i, e: None, log=lambda m: None)
    assert len(fake.cancelled) == 2  # every job still pending is cancelled
    assert printed == []
