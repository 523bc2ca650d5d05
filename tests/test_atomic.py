"""Atomic writes: a dead writer's temporary file is swept, a live writer's never."""

from __future__ import annotations

import os
import subprocess
import sys

from isonet_steps.io.atomic import atomic_path, remove_stale_parts


def test_live_writers_keep_their_temporary_file_and_dead_ones_lose_it(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as mine:
        mine.write_text("half")
        assert remove_stale_parts(target) == []  # our own, alive: kept
        assert mine.exists()
        host_pid = mine.name[len(".out.txt."):].split(".", 1)[0]
        host = host_pid.rsplit("-", 1)[0]
        dead = tmp_path / f".out.txt.{host}-{2**22 + 12345}.abc.part"  # above Linux's pid_max default
        other_host = tmp_path / f".out.txt.elsewhere-{os.getpid() + 1}.abc.part"
        unrelated = tmp_path / ".out.txt2.part"
        for p in (dead, other_host, unrelated):
            p.write_text("x")
    assert target.read_text() == "half" and not mine.exists()
    assert dead.exists()
    # the next run's write of the same file (a new process) sweeps the dead writer's leftover
    subprocess.run([sys.executable, "-c", "import sys; from isonet_steps.io.atomic import write_text; "
                    "write_text(sys.argv[1], 'whole')", str(target)], check=True)
    assert target.read_text() == "whole" and not dead.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".out.txt.elsewhere-{os.getpid() + 1}.abc.part",
                                                                 ".out.txt2.part", "out.txt"])
