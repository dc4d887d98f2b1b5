"""The largest classes and functions of chalicelib/, in lines, against the size rule.

The rule (issue 17): no class over about 250 lines, no function over about 60.
Sizes are a definition's lines from its `def` or `class` line to its last one,
docstrings and comments included. Run:

    .venv/bin/python -m tools.sizes --most 5
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "chalicelib"
CLASS_LINES = 250
FUNCTION_LINES = 60


@dataclass(frozen=True)
class Size:
    name: str  # path:Qualified.name
    lines: int


def definitions(path: Path, root: Path) -> Iterator[tuple[str, Size]]:
    """("class" or "function", its size) for every definition in a module, nested ones too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root.parent).as_posix()

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, Size]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                yield kind, Size(f"{where}:{name}", lines)
                yield from walk(child, name + ".")

    yield from walk(tree, "")


def largest(root: Path, most: int) -> dict[str, list[Size]]:
    """The `most` largest classes and functions under `root`, largest first."""
    found: dict[str, list[Size]] = {"class": [], "function": []}
    for path in sorted(root.rglob("*.py")):
        for kind, size in definitions(path, root):
            found[kind].append(size)
    return {
        kind: sorted(sizes, key=lambda s: (-s.lines, s.name))[:most]
        for kind, sizes in found.items()
    }


def report(root: Path, most: int) -> str:
    limits = {"class": CLASS_LINES, "function": FUNCTION_LINES}
    lines = []
    for kind, sizes in largest(root, most).items():
        plural = "classes" if kind == "class" else "functions"
        lines.append(f"largest {plural} (rule: about {limits[kind]} lines at most)")
        for size in sizes:
            over = "  over" if size.lines > limits[kind] else ""
            lines.append(f"  {size.lines:5d}  {size.name}{over}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--most", type=int, default=10, help="how many of each to list")
    parser.add_argument("--root", type=Path, default=ROOT, help="the package to measure")
    args = parser.parse_args(argv)
    print(report(args.root, args.most))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
