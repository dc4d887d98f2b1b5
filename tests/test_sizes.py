"""tools/sizes.py: the largest classes and functions, measured with ast, against the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import sizes


def write_package(root: Path) -> Path:
    package = root / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text(
        "class Big:\n"
        + "    x = 1\n" * 300
        + "    def method(self):\n"
        + "        y = 1\n" * 70
        + "\n\ndef small():\n    return 1\n"
    )
    (package / "sub" / "b.py").write_text("def middle():\n" + "    z = 1\n" * 9)
    return package


def test_the_largest_come_first_with_nested_methods_named_by_their_class(tmp_path: Path) -> None:
    found = sizes.largest(write_package(tmp_path), most=2)
    assert [(s.name, s.lines) for s in found["class"]] == [("pkg/a.py:Big", 372)]
    assert [(s.name, s.lines) for s in found["function"]] == [
        ("pkg/a.py:Big.method", 71),
        ("pkg/sub/b.py:middle", 10),
    ]


def test_the_report_marks_what_breaks_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sizes.main(["--most", "3", "--root", str(write_package(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "largest classes (rule: about 250 lines at most)",
        "    372  pkg/a.py:Big  over",
        "largest functions (rule: about 60 lines at most)",
        "     71  pkg/a.py:Big.method  over",
        "     10  pkg/sub/b.py:middle",
        "      2  pkg/a.py:small",
    ]
