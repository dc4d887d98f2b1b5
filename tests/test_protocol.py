"""The frame parser and validators: the documented rules, and no input makes them raise."""

from __future__ import annotations

import json
import string

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import protocol
from chalicelib.emoji import is_emoji
from chalicelib.ids import new_message_id
from chalicelib.mentions import mentioned_names
from chalicelib.protocol import (
    Ban,
    Delete,
    Edit,
    Help,
    History,
    Join,
    Kick,
    Nick,
    Ping,
    ProtocolError,
    React,
    Role,
    Rooms,
    SendMessage,
    Typing,
    Who,
)
from chalicelib.settings import Settings, SettingsError
from chalicelib.text import clean_message, has_visible, nick_problem, normalize_nick

SETTINGS = Settings(table_name="t")
ID = "01J00000000000000000000000"
HIDDEN = "nickname may not contain control, bidi, invisible or special space characters"
NO_VISIBLE = "nickname needs a visible letter, number or symbol"


def parse(body: str | None) -> object:
    return protocol.parse_frame(body, SETTINGS)


def code(result: object) -> str:
    assert isinstance(result, ProtocolError), result
    return result.code


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"action": "sendmessage", "data": "hello"}', SendMessage("hello")),
        ("hello there", SendMessage("hello there")),
        ('{"text": "no action"}', SendMessage('{"text": "no action"}')),
        ("[1, 2]", SendMessage("[1, 2]")),
        ('{"action": "join"', SendMessage('{"action": "join"')),
        ('{"action": "join", "room": "dev-ops_1.0"}', Join("dev-ops_1.0")),
        ('{"action": "nick", "name": "  Ada  "}', Nick("Ada")),
        ('{"action": "history"}', History(limit=50)),
        ('{"action": "history", "limit": 10}', History(limit=10)),
        ('{"action": "history", "limit": 500}', History(limit=50)),
        ('{"action": "who"}', Who()),
        ('{"action": "rooms"}', Rooms()),
        ('{"action": "ping"}', Ping()),
        ('{"action": "help"}', Help()),
        ("/nick Grace Hopper", Nick("Grace Hopper")),
        ("/join general", Join("general")),
        ("/who", Who()),
        ("/rooms", Rooms()),
        ("/history", History(limit=50)),
        ("/history 5", History(limit=5)),
        ("/help", Help()),
        ("//shrug", SendMessage("/shrug")),
        (f'{{"action": "edit", "id": "{ID}", "text": " fixed\\u0000 "}}', Edit(ID, "fixed")),
        (f"/edit {ID} the  whole line", Edit(ID, "the  whole line")),
        (f'{{"action": "delete", "id": "{ID}", "room": "dev"}}', Delete(ID, "dev")),
        (f"/delete {ID}", Delete(ID)),
        (f'{{"action": "react", "id": "{ID}", "emoji": "👍🏽"}}', React(ID, "👍🏽")),
        (
            f'{{"action": "react", "id": "{ID}", "emoji": "🇫🇷", "on": false}}',
            React(ID, "🇫🇷", False),
        ),
        (f"/react {ID} 👩‍💻", React(ID, "👩‍💻")),
        ('{"action": "typing", "room": "dev"}', Typing("dev")),
        ('{"action": "role", "user": "bob", "role": "moderator"}', Role("bob", "moderator")),
        ("/role bob member", Role("bob", "member")),
        ('{"action": "kick", "user": "bob", "room": "r"}', Kick(user="bob", room="r")),
        ('{"action": "kick", "nick": " guest-1a2b "}', Kick(nick="guest-1a2b")),
        ("/kick bob", Kick(user="bob")),
        ("/ban bob", Ban("bob")),
        ('{"action": "unban", "user": "bob"}', Ban("bob", banned=False)),
    ],
)
def test_frames_parse_to_commands(body: str, expected: object) -> None:
    assert parse(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("\x1b[2J\x1b[31m SYSTEM: server restarting", SendMessage("SYSTEM: server restarting")),
        ('{"action": "sendmessage", "data": "a\\u0000b\\u202ec"}', SendMessage("abc")),
        ("//\u2066shrug\u2069", SendMessage("/shrug")),
        ("one\r\ntwo\n\n\n\nthree", SendMessage("one\ntwo\n\nthree")),
        ("\x00" * 10 + "x" * 4000, SendMessage("x" * 4000)),
        ("\u200b\u200d", ProtocolError("bad_request", "message text has no visible character")),
        ("\u3164", ProtocolError("bad_request", "message text has no visible character")),
        ("\x1b[2J", ProtocolError("bad_request", "message text has no visible character")),
        (" \n ", ProtocolError("bad_request", "message text is empty")),
        (
            "x" * 4001 + "\x00",
            ProtocolError("too_large", "message is 4001 characters, at most 4000"),
        ),
        ('{"action": "nick", "name": " Grace   Hopper "}', Nick("Grace Hopper")),
        ('{"action": "nick", "name": "victim\\u034f"}', ProtocolError("invalid_nick", HIDDEN)),
        ('{"action": "nick", "name": "\\u3164"}', ProtocolError("invalid_nick", HIDDEN)),
        ('{"action": "nick", "name": "\\u202emitciv"}', ProtocolError("invalid_nick", HIDDEN)),
        ('{"action": "nick", "name": "ada\\u0000"}', ProtocolError("invalid_nick", HIDDEN)),
        ('{"action": "nick", "name": "\\u0301"}', ProtocolError("invalid_nick", NO_VISIBLE)),
        ("/nick v\u0456ctim", Nick("v\u0456ctim")),
        ('{"action": "nick", "name": "a\\ud800"}', ProtocolError("invalid_nick", HIDDEN)),
        ("/nick " + "n" * 33, ProtocolError("invalid_nick", "nickname must be 1 to 32 characters")),
    ],
)
def test_hostile_text_is_cleaned_or_refused(body: str, expected: object) -> None:
    assert parse(body) == expected


def test_history_before_takes_a_message_id() -> None:
    before = new_message_id(1_700_000_000_000)
    assert parse(json.dumps({"action": "history", "before": before})) == History(50, before)
    assert code(parse('{"action": "history", "before": "nope"}')) == "bad_request"


@pytest.mark.parametrize(
    ("body", "expected_code"),
    [
        (None, "bad_request"),
        ("   ", "bad_request"),
        ('{"action": "sendmessage"}', "bad_request"),
        ('{"action": "sendmessage", "data": 5}', "bad_request"),
        ('{"action": 7}', "bad_request"),
        ('{"action": "dance"}', "unknown_action"),
        ("/dance", "unknown_action"),
        ("/who is there", "unknown_action"),
        ('{"action": "join", "room": "no spaces"}', "invalid_room"),
        ('{"action": "join", "room": ""}', "invalid_room"),
        ('{"action": "join"}', "invalid_room"),
        ("/join " + "r" * 65, "invalid_room"),
        ('{"action": "nick", "name": ""}', "invalid_nick"),
        ('{"action": "nick", "name": "tab\\there"}', "invalid_nick"),
        ("/nick " + "n" * 33, "invalid_nick"),
        ('{"action": "nick", "name": ["x"]}', "invalid_nick"),
        ("x" * 4001, "too_large"),
        ('{"action": "history", "limit": 0}', "bad_request"),
        ('{"action": "history", "limit": true}', "bad_request"),
        ('{"action": "history", "limit": "5"}', "bad_request"),
        ("/history lots", "bad_request"),
        ('{"action": "sendmessage", "data": "\\ud800"}', "bad_request"),
        ('{"action": "edit", "text": "no id"}', "bad_request"),
        (f'{{"action": "edit", "id": "{ID}"}}', "bad_request"),
        (f'{{"action": "edit", "id": "{ID}", "text": "\\u200b"}}', "bad_request"),
        (f'{{"action": "edit", "id": "{ID}", "text": "{"x" * 4001}"}}', "too_large"),
        ('{"action": "delete", "id": 7}', "bad_request"),
        (f'{{"action": "delete", "id": "{ID}", "room": "no room"}}', "invalid_room"),
        (f'{{"action": "react", "id": "{ID}", "emoji": "lol"}}', "bad_request"),
        (f'{{"action": "react", "id": "{ID}", "emoji": "👍👍"}}', "bad_request"),
        (f'{{"action": "react", "id": "{ID}", "emoji": "👍", "on": "yes"}}', "bad_request"),
        (f"/react {ID}", "bad_request"),
        (f"/delete {ID} extra", "bad_request"),
        ('{"action": "role", "user": "bob", "role": "owner"}', "bad_request"),
        ('{"action": "ban", "user": "no spaces allowed"}', "bad_request"),
        ('{"action": "kick"}', "bad_request"),
        ('{"action": "kick", "nick": "tab\\there"}', "invalid_nick"),
        ("/ban", "bad_request"),
    ],
)
def test_bad_frames_get_error_codes(body: str | None, expected_code: str) -> None:
    assert code(parse(body)) == expected_code


def test_text_limit_counts_characters_after_trimming() -> None:
    assert parse("  " + "é" * 4000 + "  ") == SendMessage("é" * 4000)


def test_limits_come_from_settings() -> None:
    small = Settings.from_env({"TABLE_NAME": "t", "MAX_MESSAGE_CHARS": "5", "MAX_NICK_CHARS": "3"})
    assert protocol.parse_frame("123456", small) == ProtocolError(
        "too_large", "message is 6 characters, at most 5"
    )
    assert isinstance(protocol.parse_frame("/nick abcd", small), ProtocolError)
    assert protocol.parse_frame("/nick abc", small) == Nick("abc")


@pytest.mark.parametrize(
    "env",
    [{}, {"TABLE_NAME": "t", "PRESENCE_LIMIT": "lots"}, {"TABLE_NAME": "t", "MAX_NICK_CHARS": "0"}],
)
def test_unusable_settings_are_refused_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ACTIONS = ["sendmessage", "join", "nick", "history", "who", "rooms", "ping", "help", "x"]
CONVERSATION = ["edit", "delete", "react", "typing", "role", "kick", "ban", "unban"]
actions = st.sampled_from(ACTIONS + CONVERSATION)
command_documents = st.fixed_dictionaries(
    {"action": actions | json_values},
    optional={
        "data": json_values,
        "room": json_values,
        "name": json_values,
        "limit": json_values,
        "before": json_values,
        "id": st.just(ID) | json_values,
        "text": json_values,
        "emoji": st.sampled_from(["👍", "🇫🇷", "1️⃣"]) | json_values,
        "on": json_values,
        "user": st.sampled_from(["bob", "a b"]) | json_values,
        "role": st.sampled_from(["moderator", "member"]) | json_values,
    },
)
frames = st.one_of(
    st.text(),
    st.text(alphabet=string.printable).map(lambda s: "/" + s),
    st.tuples(st.sampled_from(CONVERSATION), st.text()).map(lambda p: f"/{p[0]} {ID} {p[1]}"),
    json_values.map(json.dumps),
    command_documents.map(json.dumps),
    st.just("[" * 5000 + "]" * 5000),
    st.just('{"a":' * 3000 + "1" + "}" * 3000),
)


@settings(max_examples=400)
@given(frames)
def test_no_frame_makes_the_parser_raise(body: str) -> None:
    result = parse(body)
    assert isinstance(
        result,
        ProtocolError
        | SendMessage
        | Join
        | Nick
        | History
        | Who
        | Rooms
        | Ping
        | Help
        | Edit
        | Delete
        | React
        | Typing
        | Role
        | Kick
        | Ban,
    )
    if isinstance(result, Edit):
        assert 1 <= len(result.text) <= SETTINGS.max_text_chars and has_visible(result.text)
    if isinstance(result, React):
        assert is_emoji(result.emoji)
    if isinstance(result, SendMessage):
        assert 1 <= len(result.text) <= SETTINGS.max_text_chars
        assert result.text == clean_message(result.text) == result.text.strip()
        assert has_visible(result.text)


@given(json_values)
def test_validators_accept_only_valid_names(value: object) -> None:
    nick = protocol.validate_nick(value, SETTINGS)
    if isinstance(nick, Nick):
        assert 1 <= len(nick.name) <= 32 and nick.name.isprintable()
        assert nick_problem(nick.name) is None and nick.name == normalize_nick(nick.name)
    room = protocol.validate_room(value, SETTINGS)
    if isinstance(room, Join):
        assert protocol.ROOM_PATTERN.fullmatch(room.room) and len(room.room) <= 64


@given(st.lists(st.text(max_size=5000), max_size=60))
def test_history_frames_always_fit_in_one_api_gateway_message(texts: list[str]) -> None:
    messages = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    frame = protocol.history_frame("r", messages, more=False)
    size = len(protocol.encode(frame).encode("utf-8", "surrogatepass"))
    assert size <= protocol.MAX_FRAME_BYTES
    kept = frame["messages"]
    assert kept == messages[len(messages) - len(kept) :]  # the newest ones, oldest first
    assert frame["more"] == (len(kept) < len(messages))


def test_message_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_message_id(1_700_000_000_000 + i // 10) for i in range(1000)]
    assert len(set(ids)) == 1000
    assert [i[:10] for i in ids] == sorted(i[:10] for i in ids)
    assert all(protocol.MESSAGE_ID_PATTERN.fullmatch(i) for i in ids)


@settings(max_examples=300)
@given(st.text(max_size=12) | st.text(alphabet=st.characters(min_codepoint=0x1F000), max_size=4))
def test_a_reaction_is_one_grapheme_and_never_a_letter_or_digit(text: str) -> None:
    """Checked against the `regex` module's Unicode data, which the chat does not ship."""
    if is_emoji(text):
        assert regex.fullmatch(r"\X", text), text  # one user-perceived character
        keycap = text.endswith("\u20e3")
        assert keycap or not regex.search(r"[\p{L}\p{N}\p{P}\p{Z}]", text), text


@pytest.mark.parametrize(
    "emoji",
    [
        "👍",
        "❤️",
        "👍🏽",
        "👩‍💻",
        "👨‍👩‍👧‍👦",
        "🇫🇷",
        "1️⃣",
        "#⃣",
        "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    ],
)
def test_emoji_of_every_kind_are_reactions(emoji: str) -> None:
    assert is_emoji(emoji)


@pytest.mark.parametrize("text", ["a", "ok", "1", "👍👍", "👍 ", "🇫", "\u200d👍", "🏽", "<3", ""])
def test_text_is_no_reaction(text: str) -> None:
    assert not is_emoji(text)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("hi @bob, and @carol.", ["bob", "carol"]),
        ("@bob @bob @alice", ["bob", "alice"]),
        ("mail me at ann@example.com", []),
        ("(@dev-team)", ["dev-team"]),
        ("@ alone", []),
    ],
)
def test_mentions_are_the_names_after_at(text: str, names: list[str]) -> None:
    assert mentioned_names(text) == names
