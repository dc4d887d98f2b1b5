"""The text rules: hostile message text is cleaned, hostile nicknames refused, look-alikes clash."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import confusables, text
from chalicelib.text import clean_message, nick_key, nick_problem, normalize_nick
from tools import gen_confusables

CONTROL_OR_BIDI = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\n", "\t"}
CONTROL_OR_BIDI |= text.BIDI_CONTROLS

HIDDEN_NICK = "nickname may not contain control, bidi, invisible or special space characters"
NOTHING_VISIBLE = "nickname needs a visible letter, number or symbol"


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("hello", "hello"),
        ("  two\tcolumns  ", "two\tcolumns"),
        ("\u200b\u200d", ""),
        ("\u3164", ""),
        (" \u2800\ufe0f\u034f ", ""),
        ("\x1b[2J\x1b[31m SYSTEM: server restarting", "SYSTEM: server restarting"),
        ("\x1b[38;2;255;0;0mred\x1b[0m", "red"),
        ("\x1b[?25lhidden cursor", "hidden cursor"),
        ("\x9b2J8-bit CSI", "8-bit CSI"),
        ("\x1b]0;new title\x07after", "after"),
        ("\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x9d0;8-bit OSC\x9cafter", "after"),
        ("before\x1b]0;never terminated", "before"),
        ("\x1bcreset\x1b(Bcharset", "resetcharset"),
        ("\x1b[31", "31"),
        ("stray \x1b escape", "stray scape"),
        ("stray \x1b\u00e9 and \x1b", "stray \u00e9 and"),
        ("\x1b\x00[2J", "[2J"),
        ("a\x00b\x07c\x7fd\x85e\x80f", "abcd\nef"),
        ("abc\u202edcba", "abcdcba"),
        ("\u2067isolate\u2069 \u200eLRM\u200f \u061cALM", "isolate LRM ALM"),
        ("\u202a\u202b\u202c\u202d\u2066\u2068x", "x"),
        ("line\r\nline\rline\u2028line\u2029line", "line\nline\nline\nline\nline"),
        ("x\n\n\n\n\ny", "x\n\ny"),
        ("x\n \t\n\u200b\n\u3000\ny", "x\n\ny"),
        ("x\n\ny\n\n\nz", "x\n\ny\n\nz"),
        ("\n\n\nx\n\n\n", "x"),
        (
            "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",
            "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",
        ),
        ("\u2764\ufe0f", "\u2764\ufe0f"),
        ("\u0645\u0631\u062d\u0628\u0627", "\u0645\u0631\u062d\u0628\u0627"),
    ],
)
def test_messages_are_cleaned(raw: str, cleaned: str) -> None:
    assert clean_message(raw) == cleaned


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("ada", "ada"),
        ("  Grace   Hopper  ", "Grace Hopper"),
        ("e\u0301lodie", "\u00e9lodie"),
        ("\u2764", "\u2764"),
        ("\u4e2d\u6587", "\u4e2d\u6587"),
        ("\uff56\uff49\uff43\uff54\uff49\uff4d", "\uff56\uff49\uff43\uff54\uff49\uff4d"),
    ],
)
def test_nicknames_are_normalized(raw: str, name: str) -> None:
    assert normalize_nick(raw) == name
    assert nick_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("victim\u034f", HIDDEN_NICK),
        ("vic\u200btim", HIDDEN_NICK),
        ("victim\u200d", HIDDEN_NICK),
        ("\u3164", HIDDEN_NICK),
        ("\u115f\u1160", HIDDEN_NICK),
        ("\uffa0", HIDDEN_NICK),
        ("\u2800", HIDDEN_NICK),
        ("ada\u2764\ufe0f", HIDDEN_NICK),
        ("ada\U000e0100", HIDDEN_NICK),
        ("ada\u180b", HIDDEN_NICK),
        ("ada\u00ad", HIDDEN_NICK),
        ("\u202emitciv", HIDDEN_NICK),
        ("ada\u2066", HIDDEN_NICK),
        ("ada\u200f", HIDDEN_NICK),
        ("ada\x00", HIDDEN_NICK),
        ("ada\x1b[31m", HIDDEN_NICK),
        ("a\x85da", HIDDEN_NICK),
        ("tab\there", HIDDEN_NICK),
        ("two\nlines", HIDDEN_NICK),
        ("vic\u00a0tim", HIDDEN_NICK),
        ("vic\u200atim", HIDDEN_NICK),
        ("ada\ue000", HIDDEN_NICK),
        ("\u0301", NOTHING_VISIBLE),
        ("\u0301\u0302 \u0303", NOTHING_VISIBLE),
    ],
)
def test_hidden_characters_make_a_nickname_invalid(name: str, problem: str) -> None:
    assert nick_problem(normalize_nick(name)) == problem


@pytest.mark.parametrize(
    "name",
    [
        "victim",
        "Victim",
        "VICTIM",
        "vIcTiM",
        "victim\u034f",
        "victim\u200b",
        "\u2066victim\u2069",
        "v\u0456ctim",
        "v\u0456ct\u0456m",
        "vict\u0456m",
        "v\u0456\u0441tim",
        "\uff56\uff49\uff43\uff54\uff49\uff4d",
        "\uff36\uff29\uff23\uff34\uff29\uff2d",
        "victirn",
        "  victim  ",
        "\U0001d42f\U0001d422\U0001d41c\U0001d42d\U0001d422\U0001d426",
    ],
)
def test_look_alikes_of_a_nickname_clash(name: str) -> None:
    assert nick_key(name) == nick_key("victim") == "victirn"


@pytest.mark.parametrize("name", ["victor", "victim2", "vic tim", "victims", "vctim", "v1ctim"])
def test_different_nicknames_do_not_clash(name: str) -> None:
    assert nick_key(name) != nick_key("victim")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Ada", "ada"),
        ("vic   tim", "vic tirn"),
        ("\u13a0avid", "david"),
        ("Stra\u00dfe", "strasse"),
        ("0LIVE", "olive"),
        ("\u0440\u0430\u0443\u0440\u0430l", "paypal"),
        ("\u3164", ""),
    ],
)
def test_nick_keys(name: str, key: str) -> None:
    assert nick_key(name) == key


def characters_that_change() -> list[str]:
    """Every character that normalization, case folding or the table may change: the
    assigned ones and the table's sources (unassigned, private-use and surrogate code
    points are left alone by all of them)."""
    return [
        chr(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) not in ("Cn", "Co", "Cs")
        or code in confusables.PROTOTYPES
    ]


def test_nick_key_is_stable_for_every_character() -> None:
    for char in characters_that_change():
        key = nick_key(char)
        assert nick_key(key) == key, f"U+{ord(char):04X}"


def test_case_folded_nfkc_text_holds_only_characters_the_table_keeps() -> None:
    """Why the generator may drop the sources that NFKC, case folding or NFD change."""
    for char in characters_that_change():
        if unicodedata.normalize("NFKC", char) == char:
            folded = unicodedata.normalize("NFD", char.casefold())
            assert all(gen_confusables.reachable(c) for c in folded), f"U+{ord(char):04X}"


def test_the_confusables_table_is_unicode_18_and_idempotent() -> None:
    assert confusables.UNICODE_VERSION == "18.0.0"
    table = confusables.PROTOTYPES
    assert len(table) == 3322
    assert all(gen_confusables.reachable(chr(source)) for source in table)
    assert table[ord("\u0456")] == "i"
    assert table[ord("m")] == "rn"
    assert table[ord("1")] == table[ord("|")] == "l"
    assert ord("\u0410") not in table  # CYRILLIC CAPITAL A: case folding makes it \u0430
    assert table[ord("\u0430")] == "a"
    assert not any(ord(c) in table for prototype in table.values() for c in prototype)


SAMPLE = """\ufeff# confusables.txt
# Date: 2026-01-01, 00:00:00 GMT
# \u00a9 2026 Unicode\u00ae, Inc.
# Version: 99.0.0

0456 ;\t0069 ;\tMA\t# ( \u0456 \u2192 i ) CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
006D ;\t0072 006E ;\tMA\t# ( m \u2192 rn )
0022 ;\t0027 0027 ;\tMA\t# quotation mark
1D400 ;\t0041 ;\tMA\t# bold A
"""


def test_the_generator_renders_a_module_with_the_mapping() -> None:
    header, mapping = gen_confusables.parse(SAMPLE.lstrip("\ufeff"))
    assert header == {
        "Date": "2026-01-01, 00:00:00 GMT",
        "Version": "99.0.0",
        "Copyright": "Copyright \u00a9 2026 Unicode\u00ae, Inc.",
    }
    source = gen_confusables.render(header, mapping, "a test", "0" * 64)
    namespace: dict[str, object] = {}
    exec(compile(source, "confusables.py", "exec"), namespace)
    assert namespace["UNICODE_VERSION"] == "99.0.0"
    # MATHEMATICAL BOLD CAPITAL A is left out: NFKC makes it "A" before the table is used.
    assert namespace["PROTOTYPES"] == {0x456: "i", 0x6D: "rn", 0x22: "''"}
    assert "# Copyright \u00a9 2026 Unicode\u00ae, Inc." in source
    assert "SPDX-License-Identifier: Unicode-3.0" in source


@pytest.mark.parametrize(
    "line",
    ["0069 ;\t006C ;\tMA", "0456 ;\t007C ;\tMA", "0456 ;\t0069 ;\tMA"],
)
def test_the_generator_refuses_data_it_cannot_use(line: str) -> None:
    with pytest.raises(ValueError):
        gen_confusables.parse(SAMPLE + line + "\n")


hostile = st.sampled_from(
    [
        "\x1b",
        "[",
        "]",
        "\\",
        "\x07",
        "\x9b",
        "\x9c",
        "\x9d",
        "\x00",
        "\r",
        "\n",
        "\t",
        " ",
        "m",
        "2;",
        "\x85",
        "\u2028",
        "\u202e",
        "\u2066",
        "\u200b",
        "\u200d",
        "\u034f",
        "\u3164",
        "\ufe0f",
        "\u0301",
        "\ud800",
        "\u0456",
        "I",
    ]
)
any_char = st.characters(exclude_categories=())
texts = st.lists(hostile | any_char, max_size=60).map("".join) | st.text(any_char)


@settings(max_examples=500)
@given(texts)
def test_cleaning_removes_every_control_and_never_grows(raw: str) -> None:
    cleaned = clean_message(raw)
    assert clean_message(cleaned) == cleaned
    assert len(cleaned) <= len(raw)
    assert not set(cleaned) & CONTROL_OR_BIDI
    assert cleaned == cleaned.strip()
    lines = cleaned.split("\n")
    assert all(line == "" or text.has_visible(line) for line in lines)
    assert "\n\n\n" not in cleaned
    assert cleaned == "" or text.has_visible(cleaned)


@settings(max_examples=500)
@given(texts)
def test_nick_keys_are_stable_and_ignore_case_and_invisible_characters(raw: str) -> None:
    key = nick_key(raw)
    assert nick_key(key) == key
    assert nick_key(raw.upper()) == key
    assert nick_key(raw.lower()) == key
    assert nick_key(raw + "\u034f") == key
    assert nick_key("\u200b" + raw) == key


@given(texts)
def test_a_valid_nickname_has_only_printable_visible_characters(raw: str) -> None:
    name = normalize_nick(raw)
    if nick_problem(name) is None:
        assert name.isprintable() and not set(name) & text.INVISIBLE
        assert text.has_visible(name)
        assert nick_key(name)
        assert unicodedata.is_normalized("NFC", name)
        assert "  " not in name and name == name.strip()
