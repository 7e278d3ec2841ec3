"""Running the command line in-process from tests, and checking its error lines."""
from __future__ import annotations

from edgecount.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``edgecount ARGV``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    """A user error: non-zero exit and one ``edgecount: error:`` line containing ``words``."""
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecount: error:"), err
    for word in words:
        assert word in lines[0], lines[0]
