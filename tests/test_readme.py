"""The README's code runs and says what it shows."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_code import run_python_blocks

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_examples_run_and_print_what_they_claim():
    namespace = run_python_blocks(README)
    # The comments of the dtype example state these results.
    assert namespace["bits"].tolist() == [1, 6, 15]
    assert namespace["tv"].f4e2m1.decode(namespace["bits"]).tolist() == [0.5, 4.0, -6.0]
    assert namespace["w"].data.size == 5


def test_ci_runs_the_readme_test_command():
    text = README.read_text()
    marker = text.index("<!-- test command")
    command = re.search(r"```bash\n(.*?)\n```", text[marker:], flags=re.S).group(1)
    assert "pytest" in command and "-n 2" in command and "--durations=25" in command
    assert command.startswith("pip install torch==2.13.0")
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- test command" in ci  # CI extracts the command after the same marker
