"""The README's examples run as they are written: the Python ones, and the curl story."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.processes import Server

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "the README has no Python example"
    for block in blocks:
        # As a script of its own: without this test module's `from __future__` imports.
        exec(compile(block, str(README), "exec", dont_inherit=True), {})


def test_readme_curl_story_runs_against_cronica_serve(tmp_path: Path) -> None:
    """The quick start's curl commands, run by bash against ``cronica serve``; the output
    lines match the ``# ...`` lines written under each command."""
    [story] = [
        block
        for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
        if "curl" in block
    ]
    expected = [line[2:] for line in story.splitlines() if line.startswith("# ")]
    server = Server("--store", f"sqlite:///{tmp_path / 'story.db'}", cwd=tmp_path)
    try:
        script = story.replace("http://127.0.0.1:8000", server.base)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    got = [" ".join(line.split()) for line in done.stdout.splitlines() if line.strip()]
    got = [line.replace("[ ", "[").replace(" ]", "]").replace(", ", ",") for line in got]
    assert _joined(got) == _joined(expected)


def _joined(lines: list[str]) -> str:
    """Lines as one text without spaces, so jq's layout and the README's compare equal."""
    return "".join("".join(lines).split())
