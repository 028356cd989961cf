"""Admission on the machine's CPU: every worker on a box sees the cores fill before any tick runs late. The
idle scheduling class (our speech-to-text helpers) is not counted: it gives way to the audio at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from switchboard.calls import box_cpu
from switchboard.calls.box_cpu import BoxCpu
from switchboard.calls.overload import Overload

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\nprint('done', flush=True)\ntime.sleep(60)\n"


def _burner(seconds: float, *, idle_class: bool) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", BURN.format(s=seconds)]
    if idle_class:
        cmd = ["chrt", "--idle", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "done"  # it has used its CPU
    return proc


def test_the_idle_class_time_is_counted_and_normal_processes_are_not():
    settled = box_cpu._idle_class_seconds()
    for _ in range(100):  # idle-class processes of earlier tests (a model still loading) would count here too
        time.sleep(0.2)
        now = box_cpu._idle_class_seconds()
        if now - settled < 0.02:
            break
        settled = now
    else:
        raise AssertionError("other idle-class processes kept using CPU for 20 s")
    before = box_cpu._idle_class_seconds()
    idle = _burner(0.8, idle_class=True)
    normal = _burner(0.8, idle_class=False)
    try:
        gained = box_cpu._idle_class_seconds() - before
        assert 0.7 <= gained < 1.5, gained  # the idle-class burner's 0.8 s, not the normal one's too
    finally:
        for p in (idle, normal):
            p.kill()
            p.wait()


def test_a_real_sample_is_a_share_of_all_cores():
    box = BoxCpu(window_s=3.0)
    assert box.sample() is None  # one reading: no interval yet
    time.sleep(0.2)
    share = box.sample()
    assert share is not None and 0.0 <= share <= 1.0


def test_the_share_is_over_the_window_and_leaves_the_idle_class_out():
    cores = os.cpu_count() or 1
    box = BoxCpu(window_s=3.0)
    t = b = i = 0.0
    for _ in range(10):  # 10 s at 20 % busy, none idle-class
        t, b = t + cores, b + 0.2 * cores
        box.add(t, b, i)
    assert box.share == pytest.approx(0.2)
    for _ in range(4):  # then 4 s at 90 % busy, of which 60 % points are idle-class helpers
        t, b, i = t + cores, b + 0.9 * cores, i + 0.6 * cores
        box.add(t, b, i)
    assert box.share == pytest.approx(0.3)  # only the last 3 s: 90 % - 60 %
    for _ in range(4):
        t, b = t + cores, b + 0.85 * cores
        box.add(t, b, i)
    assert box.share == pytest.approx(0.85)


def test_admission_refuses_on_a_busy_machine_once_the_worker_carries_calls():
    calls = [12]
    box = BoxCpu(window_s=3.0)
    overload = Overload(None, admission=True, active_calls=lambda: calls[0], cpu_limit=0.75, cpu_min_calls=10,
                        box_cpu=box)
    cores = os.cpu_count() or 1
    box.add(0.0, 0.0, 0.0)
    box.add(cores, 0.5 * cores, 0.0)
    assert overload.admit()  # 50 %
    box.add(2 * cores, 1.4 * cores, 0.0)
    box.add(3 * cores, 2.3 * cores, 0.0)  # two seconds at 90 %: 77 % over the three
    assert not overload.admit()
    assert "77 % busy" in (overload.refusal_reason() or "")
    assert overload.snapshot()["box_cpu_share"] == pytest.approx(2.3 / 3, abs=1e-3)
    calls[0] = 9  # a worker carrying a few calls is not what loads the box: it still takes them
    assert overload.admit()
    assert Overload(None, admission=True, active_calls=lambda: 12, cpu_limit=0.8, box_cpu=box).admit()
    assert Overload(None, admission=True, active_calls=lambda: 12, cpu_limit=0.0, box_cpu=box).admit()  # off


def test_the_limit_is_a_share_of_all_cores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHBOARD_ADMIT_CPU", "75")
    with pytest.raises(ValueError, match="SWITCHBOARD_ADMIT_CPU"):
        Overload(None)
    monkeypatch.setenv("SWITCHBOARD_ADMIT_CPU", "most")
    with pytest.raises(ValueError, match="SWITCHBOARD_ADMIT_CPU .* not 'most'"):
        Overload(None)
    monkeypatch.setenv("SWITCHBOARD_ADMIT_CPU", "0.6")
    assert Overload(None).cpu_limit == 0.6
