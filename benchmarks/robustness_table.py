"""Write docs/ROBUSTNESS.md: every bad-input case of tests/robustness_cases.py with its real message.

    python benchmarks/robustness_table.py > docs/ROBUSTNESS.md

Runs each case through the command line (in-process, about a minute) and prints the table;
tests/test_robustness.py fails while the file and the messages differ.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import robustness_cases as rc  # noqa: E402


def main() -> int:
    messages = {}
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = rc.build_sources(Path(tmp) / "sources")
        for case in rc.all_cases():
            outcome = rc.run_case(case, Path(tmp) / "cases" / case.id, sources)
            problems = rc.check(case, outcome)
            if problems:
                failed.append(f"{case.id}: {'; '.join(problems)}")
            messages[case.id] = rc.normalise(outcome.message)
    if failed:
        print("these cases do not behave; fix them before writing the table:\n  " + "\n  ".join(failed),
              file=sys.stderr)
        return 1
    sys.stdout.write(rc.table(messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
