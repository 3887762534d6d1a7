"""`make run`'s main job on an idle machine and beside one CPU-bound process, in one run.

    .venv/bin/python benchmarks/busy_machine.py                 # the thread policy of vsb2net.threads
    .venv/bin/python benchmarks/busy_machine.py --env OMP_WAIT_POLICY=ACTIVE -- --set train.threads=2
                                                                # the old one: a thread per core, spinning

Runs ``python -m vsb2net run --tuned auto`` (what `make run` runs) into a temporary directory
twice: once as it finds the machine, once while one other process spins a core (a plain Python
loop, the kind of load a browser tab or another job puts on a laptop). Prints both wall times and
their ratio; arguments after ``--`` go to ``vsb2net run`` (e.g. ``--set train.threads=2``). On a
shared machine "idle" is only as idle as the others let it be: read the figures with that.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN = "while True:\n    pass\n"


def timed_run(out: Path, extra: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the job, the machine's mean run-queue length meanwhile)."""
    cmd = [sys.executable, "-m", "vsb2net", "run", "--tuned", "auto", "--no-progress", "--out", str(out), *extra]
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:  # how busy the machine was, the job and the spinner included
        while not done.wait(2.0):
            with open("/proc/loadavg") as f:
                loads.append(float(f.read().split()[3].split("/")[0]) - 1)  # running now, less this sampler
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    if proc.returncode != 0:
        sys.exit(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return seconds, cpu, sum(loads) / max(1, len(loads))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for both runs (e.g. OMP_WAIT_POLICY=ACTIVE)")
    p.add_argument("run_args", nargs="*", help="more arguments of `vsb2net run` (after --)")
    args = p.parse_args()
    env = dict(os.environ)
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--env {item}: give KEY=VALUE")
        env[key] = value
    print(f"cores usable: {len(os.sched_getaffinity(0))}; extra run arguments: {args.run_args or 'none'}; "
          f"environment: {args.env or 'as found'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vsb2net-busy-") as tmp:
        idle, cpu, load = timed_run(Path(tmp) / "idle", args.run_args, env)
        print(f"idle machine:         {idle:6.1f} s wall, {cpu:6.1f} s CPU; processes running meanwhile: {load:.1f} "
              "on average (the job's included)", flush=True)
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        try:
            time.sleep(1.0)  # the spinner is running before the job starts
            busy, cpu, load = timed_run(Path(tmp) / "busy", args.run_args, env)
        finally:
            spinner.kill()
            spinner.wait()
        print(f"beside one busy core: {busy:6.1f} s wall, {cpu:6.1f} s CPU; processes running meanwhile: {load:.1f} "
              "on average (the job's and the spinner included)", flush=True)
    print(f"busy / idle: {busy / idle:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
