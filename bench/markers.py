"""Generated blocks in Markdown pages: a command rewrites the text between its markers.

A figure a command produces is written by that command, never copied by hand:
`<!-- NAME:start -->` and `<!-- NAME:end -->` delimit what the command owns,
and everything around them is kept.
"""

from __future__ import annotations

import re
from pathlib import Path


def replace_block(page: Path, name: str, text: str) -> None:
    """Put `text` between the `name` markers of `page` (appended if the page has none)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text}\n{end}"
    current = page.read_text() if page.exists() else ""
    if start not in current:
        current += f"\n{start}\n{end}\n"
    pattern = re.escape(start) + ".*?" + re.escape(end)
    page.write_text(re.sub(pattern, lambda _: block, current, count=1, flags=re.DOTALL))
