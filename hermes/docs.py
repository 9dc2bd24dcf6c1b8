"""Generated parts of the README, kept true by a test (`tests/unit/test_readme.py`).

    python -m hermes.docs        # rewrite the generated sections of README.md in place
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from hermes import _core

README = Path(__file__).resolve().parent.parent / "README.md"
_SECTION = re.compile(
    r"(<!-- generated:(?P<name>[a-z-]+) -->\n).*?(<!-- /generated:(?P=name) -->)", re.S
)


def error_table() -> str:
    rows = ["| code | HTTP | retryable | title |", "| --- | --- | --- | --- |"]
    for e in _core.error_codes():
        retry = "yes" if e["retryable"] else "no"
        rows.append(f"| `{e['code']}` | {e['status']} | {retry} | {e['title']} |")
    return "\n".join(rows) + "\n"


GENERATORS = {"errors": error_table}


def render(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        return m.group(1) + GENERATORS[m.group("name")]() + m.group(3)

    return _SECTION.sub(replace, text)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if new != text:
        README.write_text(new)
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
