"""The gateway's own life: autoreload, start-up errors, Ctrl-C, flags.

Each test starts its own `python -m localgateway` (on a temporary copy of the
probe app where it edits files) and stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench import stop as stop_bench
from localgateway.apigateway import registry
from localgateway.testing.frames import answers
from tests.conftest import APPS, ROOT, RunningGateway, start_gateway


@pytest.fixture
def probe_copy(tmp_path: Path) -> Path:
    project = tmp_path / "probe"
    shutil.copytree(APPS / "probe", project, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def wait_for_answer(
    gateway: RunningGateway, ws: Any, frame: str, expected: str, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while (got := answers(ws, frame)) != {expected}:
        assert time.monotonic() < deadline, (
            f"{frame!r} never got {expected!r}, last {got}:\n{gateway.log()}"
        )
        time.sleep(0.05)


def wait_for_log(gateway: RunningGateway, line: str, count: int, timeout: float = 20) -> None:
    """Wait until the gateway has logged `line` `count` times."""
    deadline = time.monotonic() + timeout
    while gateway.log().count(line) < count:
        assert time.monotonic() < deadline, f"{line!r} not logged {count} times:\n{gateway.log()}"
        time.sleep(0.05)


def test_autoreload_keeps_connections_and_loses_no_message(
    probe_copy: Path, tmp_path: Path
) -> None:
    gateway = start_gateway(tmp_path, probe_copy, "--warm-workers", "1")
    try:
        with gateway.connect() as ws:
            ws.send("what")
            assert ws.recv(timeout=10) == "unknown: what"
            edit(probe_copy / "chalicelib" / "__init__.py", '"unknown"', '"version 2"')
            edited = time.monotonic()
            reloaded_after, rounds = None, 0
            # Keep sending through the reload: every frame is answered, by either version.
            while reloaded_after is None and time.monotonic() - edited < 20:
                got = answers(ws, f"return {rounds}", f"which {rounds}")
                assert str(rounds) in got, got
                if f"version 2: which {rounds}" in got:
                    reloaded_after = time.monotonic() - edited
                else:
                    assert f"unknown: which {rounds}" in got, got
                rounds += 1
                time.sleep(0.02)
            assert reloaded_after is not None, gateway.log()
            assert reloaded_after < 5, reloaded_after  # the issue asks for 2 s; CI is slower
            assert rounds > 1  # frames went out during the reload
            # A process the old version starts meanwhile imports the files on disk, so
            # version 2 can answer before the switch: wait for the switch itself.
            wait_for_log(gateway, "reloaded in", 1)

            # A broken edit keeps the running version; fixing it reloads.
            edit(probe_copy / "app.py", "import chalicelib\n", "import chalicelib\nbroken(\n")
            wait_for_log(gateway, "not reloaded", 1)
            assert "SyntaxError" in gateway.log()
            assert answers(ws, "still") == {"version 2: still"}
            edit(probe_copy / "app.py", "import chalicelib\nbroken(\n", "import chalicelib\n")
            wait_for_log(gateway, "reloaded in", 2)
            assert answers(ws, "again") == {"version 2: again"}
            # Saved twice within a second: the same size and mtime as version 2's .pyc.
            library = probe_copy / "chalicelib" / "__init__.py"
            saved = library.stat()
            edit(library, '"version 2"', '"version 3"')
            os.utime(library, ns=(saved.st_atime_ns, saved.st_mtime_ns))
            wait_for_answer(gateway, ws, "again", "version 3: again")
    finally:
        assert gateway.stop() == 0


def test_autoreload_picks_up_added_and_removed_pure_functions(
    probe_copy: Path, tmp_path: Path
) -> None:
    gateway = start_gateway(tmp_path, probe_copy, "--warm-workers", "1")
    try:
        client = boto3.session.Session().client("lambda", endpoint_url=gateway.endpoints["lambda"])
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="added")
        edit(
            probe_copy / "app.py",
            '@app.lambda_function(name="fail")',
            '@app.lambda_function(name="added")',
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                response = client.invoke(FunctionName="probe-dev-added")
                break
            except client.exceptions.ResourceNotFoundException:
                assert time.monotonic() < deadline, gateway.log()
                time.sleep(0.05)
        assert response["FunctionError"] == "Unhandled"  # what was `fail`, under its new name
        assert json.loads(response["Payload"].read())["errorMessage"] == "failed on purpose"
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="fail")
    finally:
        assert gateway.stop() == 0


def test_clear_errors_for_a_missing_app_a_broken_app_and_a_port_in_use(
    probe_copy: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = start_gateway(tmp_path, empty, expect_failure=True)
    assert missing.process.wait(30) == 1
    assert f"no app.py in {empty}" in missing.log()

    edit(probe_copy / "app.py", "import chalicelib\n", "import chalicelib\nbroken(\n")
    broken = start_gateway(tmp_path, probe_copy, expect_failure=True)
    assert broken.process.wait(30) == 1
    log = broken.log()
    assert "app.py failed to import" in log and "SyntaxError" in log, log
    line = (probe_copy / "app.py").read_text().splitlines().index("broken(") + 1
    assert f'File "{probe_copy / "app.py"}", line {line}' in log, log

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = start_gateway(tmp_path, APPS / "probe", "--port", str(port), expect_failure=True)
        assert busy.process.wait(30) == 1
    assert f"port {port} on 127.0.0.1 is in use" in busy.log()


@pytest.mark.parametrize("delay", [0.2, 1.5])
def test_ctrl_c_during_start_up_stops_it(probe_copy: Path, tmp_path: Path, delay: float) -> None:
    """At 0.2 s Python is still importing, at 1.5 s the embedded AWS and the first worker
    start: either way the gateway stops, even started with SIGINT ignored (a background
    job of a script). The app takes 6 s to import, so a fast machine is still starting."""
    edit(probe_copy / "app.py", "import time\n", "import time\n\ntime.sleep(6)\n")
    command = [sys.executable, "-m", "localgateway", "--project-dir", str(probe_copy)]
    command += ["--port", "0", "--tls-port", "0", "--state-dir", str(tmp_path / "state")]
    with (tmp_path / "gateway.log").open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(10)
    finally:
        process.kill()
    log = (tmp_path / "gateway.log").read_text()
    # 130, or dying of the signal itself when it lands as Python exits.
    assert code in (130, -signal.SIGINT), log
    assert "ready in" not in log and "Traceback" not in log, log


def test_a_missing_aws_profile_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    gateway = start_gateway(tmp_path, APPS / "probe", expect_failure=True)
    assert gateway.process.wait(30) == 1
    assert gateway.log().splitlines() == [
        "localgateway: AWS_PROFILE=no-such-profile names no profile in ~/.aws/config or "
        "~/.aws/credentials: create it (aws configure --profile NAME) or unset AWS_PROFILE"
    ]


def test_ctrl_c_closes_every_socket_runs_every_disconnect_and_exits_within_3_s(
    tmp_path: Path,
) -> None:
    gateway = start_gateway(tmp_path, APPS / "probe")
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(gateway.connect()) for _ in range(20)]
        for ws in sockets:
            ws.send("return hi")
        assert [ws.recv(timeout=20) for ws in sockets] == ["hi"] * 20
        workers = gateway.children()
        assert workers
        gateway.process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert gateway.process.wait(15) == 0
        assert time.monotonic() - signalled < 3
    log = gateway.log()
    assert log.count("close 1001 Going away: gateway stopped)") == 20, log
    assert "Traceback" not in log and "did not finish" not in log, log
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), pid


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_post_latency_delays_each_call_and_calls_overlap(tmp_path: Path) -> None:
    gateway = start_gateway(
        tmp_path, APPS / "probe", "--no-autoreload", "--post-latency-ms", "300", "--quiet"
    )
    try:
        client = gateway.management()
        with gateway.connect() as ws:
            ws.send("event")
            cid = json.loads(ws.recv(timeout=10))["requestContext"]["connectionId"]

            def post(number: int) -> float:
                started = time.monotonic()
                client.post_to_connection(ConnectionId=cid, Data=str(number).encode())
                return time.monotonic() - started

            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                durations = list(pool.map(post, range(8)))
            total = time.monotonic() - started
            assert sorted(ws.recv(timeout=10) for _ in range(8)) == [str(n) for n in range(8)]
            ws.send("fail")
            assert json.loads(ws.recv(timeout=10))["message"] == "Internal server error"
        assert min(durations) >= 0.3
        assert total < 8 * 0.3  # concurrent posts overlap: an asyncio.sleep, not a lock
        log = gateway.log()
        assert " CONNECT " not in log  # --quiet: no line per connection and message ...
        failures = [line for line in log.splitlines() if line.split()[1:2] == ["MESSAGE"]]
        assert len(failures) == 1 and "failed on purpose" in failures[0]  # ... but failures
    finally:
        gateway.stop()


def test_an_existing_dynamodb_gets_the_tables_and_the_data(tmp_path: Path) -> None:
    """--dynamodb-endpoint: here another moto server, standing in for DynamoDB Local."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        gateway = start_gateway(
            tmp_path, APPS / "probe", "--no-autoreload", "--dynamodb-endpoint", endpoint
        )
        try:
            assert gateway.endpoints["dynamodb"] == endpoint
            with gateway.connect() as ws:
                ws.send("event")
                cid = json.loads(ws.recv(timeout=10))["requestContext"]["connectionId"]
            dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
            assert dynamodb.list_tables()["TableNames"] == ["probe-dev-EventsTable"]
            item = dynamodb.get_item(
                TableName="probe-dev-EventsTable",
                Key={"pk": {"S": cid}, "sk": {"S": "connect"}},
            )
            assert "Item" in item
        finally:
            gateway.stop()
    finally:
        server.stop()


def test_a_restart_keeps_the_chats_history_unless_started_fresh(tmp_path: Path) -> None:
    state = tmp_path / "state"

    def chat(*flags: str) -> RunningGateway:
        return start_gateway(tmp_path / f"run{len(list(tmp_path.iterdir()))}", ROOT, *flags)

    def history(gateway: RunningGateway) -> list[str]:
        with gateway.connect("?room=kept") as ws:
            ws.send(json.dumps({"action": "join", "room": "kept"}))
            while (frame := json.loads(ws.recv(timeout=20)))["type"] != "joined":
                pass
        return [message["text"] for message in frame["history"]]

    first = chat("--no-autoreload", "--state-dir", str(state))
    try:
        with first.connect("?room=kept") as ws:
            for text in ("one", "two", "three"):
                ws.send(json.dumps({"action": "sendmessage", "data": text}))
                while json.loads(ws.recv(timeout=20)).get("text") != text:
                    pass
    finally:
        first.stop()
    assert "saved the tables" in first.log()
    second = chat("--no-autoreload", "--state-dir", str(state))
    try:
        assert "items restored" in second.log()
        assert history(second) == ["one", "two", "three"]
    finally:
        second.stop()
    fresh = chat("--no-autoreload", "--state-dir", str(state), "--fresh")
    try:
        assert history(fresh) == []
    finally:
        fresh.stop()


def test_a_stop_saves_only_what_changed_and_restarts_restore_exactly_the_items(
    tmp_path: Path,
) -> None:
    """The first stop saves the table whole; a later one writes only the items changed
    since (so its cost does not grow with the table: the base file is not touched), and
    every restart, after a stop or a `kill -9`, holds exactly the items of the last save."""
    state = tmp_path / "state"
    table = "chalice-chat-dev-ChatTable"  # the merge template's ChatTable, as the gateway names it
    base = state / f"{table}.jsonl"
    changes = state / f"{table}.changes"

    def run(name: str, save_every: str = "3600") -> RunningGateway:
        flags = ("--no-autoreload", "--state-dir", str(state), "--save-every", save_every)
        return start_gateway(tmp_path / name, ROOT, *flags)

    def key(n: int) -> dict[str, Any]:
        return {"pk": {"S": "HIST#big"}, "sk": {"S": f"{n:06d}"}}

    def item(n: int, text: str) -> dict[str, Any]:
        return {**key(n), "text": {"S": text}, "expires_at": {"N": "4000000000"}}

    def items(gateway: RunningGateway) -> dict[str, dict[str, Any]]:
        pages = gateway.dynamodb().get_paginator("scan").paginate(TableName=table)
        return {found["sk"]["S"]: found for page in pages for found in page["Items"]}

    expected = {f"{n:06d}": item(n, f"message {n}") for n in range(2000)}
    first = run("first")
    try:
        assert first.endpoints["tables"] == {"ChatTable": table}
        dynamo = first.dynamodb()
        puts = [{"PutRequest": {"Item": one}} for one in expected.values()]
        for start in range(0, len(puts), 25):
            assert not dynamo.batch_write_item(RequestItems={table: puts[start : start + 25]})[
                "UnprocessedItems"
            ]
    finally:
        assert first.stop() == 0
    assert f"({table}: 2000 items)" in first.log()  # never saved: saved whole
    assert len(base.read_text().splitlines()) == 2000
    whole = base.stat()

    second = run("second")
    try:
        assert items(second) == expected
        dynamo = second.dynamodb()
        for n in (2000, 2001, 2002):
            dynamo.put_item(TableName=table, Item=item(n, "new"))
            expected[f"{n:06d}"] = item(n, "new")
        for n in (5, 6):
            dynamo.update_item(
                TableName=table,
                Key=key(n),
                UpdateExpression="SET #t = :t",
                ExpressionAttributeNames={"#t": "text"},
                ExpressionAttributeValues={":t": {"S": "edited"}},
            )
            expected[f"{n:06d}"]["text"] = {"S": "edited"}
        for n in (7, 8):
            dynamo.delete_item(TableName=table, Key=key(n))
            del expected[f"{n:06d}"]
        batch = [{"PutRequest": {"Item": item(9, "replaced")}}, {"DeleteRequest": {"Key": key(10)}}]
        dynamo.batch_write_item(RequestItems={table: batch})
        expected["000009"] = item(9, "replaced")
        del expected["000010"]
        dynamo.transact_write_items(
            TransactItems=[{"Delete": {"TableName": table, "Key": key(11)}}]
        )
        del expected["000011"]
    finally:
        assert second.stop() == 0
    assert f"({table}: 10 changed items)" in second.log()
    assert (base.stat().st_ino, base.stat().st_mtime_ns) == (whole.st_ino, whole.st_mtime_ns)
    (stop_file,) = changes.iterdir()
    records = [json.loads(line) for line in stop_file.read_text().splitlines()]
    assert sorted(next(iter(record)) for record in records) == ["delete"] * 4 + ["put"] * 6

    third = run("third", save_every="0.3")
    try:
        assert items(third) == expected
        third.dynamodb().put_item(TableName=table, Item=item(12, "saved before the kill"))
        expected["000012"] = item(12, "saved before the kill")
        deadline = time.monotonic() + 20
        while len(list(changes.glob("*.jsonl"))) < 2:  # a periodic save
            assert time.monotonic() < deadline, third.log()
            time.sleep(0.05)
    finally:
        third.process.kill()
        third.process.wait()
    fourth = run("fourth")
    try:
        assert items(fourth) == expected
    finally:
        assert fourth.stop() == 0
    assert f"({table}: 0 changed items)" in fourth.log()
    assert len(list(changes.glob("*.jsonl"))) == 2  # nothing changed: no file


def test_the_chalice_tutorial_layout_finds_resources_json_at_the_project_root(
    tmp_path: Path,
) -> None:
    gateway = start_gateway(tmp_path / "dev", APPS / "tutorial", "--no-autoreload")
    try:
        assert gateway.endpoints["tables"] == {"Table": "tutorial-dev-Table"}
        with gateway.connect() as ws:
            ws.send("first")
            assert ws.recv(timeout=20) == "stored 1"
            ws.send("second")
            assert ws.recv(timeout=20) == "stored 2"
        assert "warning" not in gateway.log()
    finally:
        gateway.stop()


def test_a_variable_naming_a_missing_table_is_in_the_banner_and_the_log(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, APPS / "tutorial", "--no-autoreload", "--stage", "typo")
    try:
        banner = gateway.log()
        warning = "AUDIT_TABLE='tutorial-audit' names no table"
        assert f"  warning       websocket_message: {warning}" in banner
        assert f"warning: websocket_message: {warning}" in banner
    finally:
        gateway.stop()


def test_listening_beyond_loopback_says_what_it_exposes(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, APPS / "probe", "--no-autoreload", "--host", "0.0.0.0")
    try:
        log = gateway.log()
        assert "--host 0.0.0.0 listens beyond this machine" in log
        assert "@connections and Lambda's Invoke need a signature" in log
    finally:
        gateway.stop()


def test_an_invocation_that_waits_too_long_for_a_worker_is_refused_and_logged(
    tmp_path: Path,
) -> None:
    gateway = start_gateway(
        tmp_path, APPS / "probe", "--no-autoreload", "--max-workers", "1", "--queue-timeout", "1"
    )
    try:
        with _connected(gateway) as busy:
            _warm_for_messages(busy)
            busy.send("sleep 2.5")  # holds the only process (the timeout is 3 s)
            time.sleep(0.5)
            started = time.monotonic()
            with pytest.raises(InvalidStatus) as info:
                gateway.connect()  # its $connect waits for a process, then gives up
            assert info.value.response.status_code == 500
            assert 1 <= time.monotonic() - started < 3.5
            assert busy.recv(timeout=20) == "slept 2.5"
        log = gateway.log()
        assert "no free handler process for 1 s (--max-workers 1" in log, log
    finally:
        gateway.stop()


def test_a_flooding_connections_frames_that_wait_too_long_are_answered_too_many_requests(
    tmp_path: Path,
) -> None:
    """Up to FLOOD_FRAMES frames of a connection wait for a process as long as it takes;
    beyond that a frame waits --frame-queue-timeout, then is answered and never runs."""
    gateway = start_gateway(
        tmp_path,
        APPS / "probe",
        "--no-autoreload",
        "--max-workers",
        "1",
        "--frame-queue-timeout",
        "1",
    )
    try:
        with _connected(gateway) as ws:
            _warm_for_messages(ws)
            time.sleep(0.2)  # the warm frame's answer leaves before the frame is counted done
            ws.send("sleep 2")  # holds the only process while the others queue
            for n in range(15):
                ws.send(f"echo {n}")
            answers = [ws.recv(timeout=20) for _ in range(16)]
            extra = []
            with contextlib.suppress(TimeoutError):
                while True:
                    extra.append(ws.recv(timeout=1))
            assert not extra, extra
        refused = [a for a in answers if a.startswith("{")]
        assert [json.loads(a)["message"] for a in refused] == ["Too Many Requests"] * 6
        echoed = sorted(int(a) for a in answers if a.isdigit())
        assert echoed == list(range(registry.FLOOD_FRAMES - 1)), answers
        assert "slept 2" in answers
    finally:
        gateway.stop()


def _warm_for_messages(ws: Any) -> None:
    """Once the one process serves messages: handing it over from $connect means a cold
    start, which on a loaded machine takes longer than the 1 s queue timeout."""
    deadline = time.monotonic() + 30
    while True:
        ws.send("echo warm")
        if ws.recv(timeout=20) == "warm":
            return
        assert time.monotonic() < deadline, "no process for messages within 30 s"


def _connected(gateway: RunningGateway) -> Any:
    """A connection, once the one process has been handed to $connect (it started with the
    messages'): a loaded machine may take longer than the 1 s queue timeout for that."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return gateway.connect()
        except InvalidStatus:
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.5)


def test_the_page_is_served_from_static(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, APPS / "probe", "--no-autoreload", "--warm-workers", "1")
    try:
        status, page = gateway.get("/")
        assert status == 200 and "served from static/" in page
        assert gateway.get("/../app.py")[0] == 403
        # Beside the files, what a page cannot find out by itself (no Cognito here).
        status, config = gateway.get("/local-gateway.json")
        assert status == 200 and config == {"stage": "ws"}
    finally:
        gateway.stop()


@pytest.mark.parametrize("stop", [stop_bench.CTRL_C, stop_bench.KILL])
def test_no_connection_of_a_stopped_run_is_a_member_after_a_restart(
    tmp_path: Path, stop: str
) -> None:
    """Every $disconnect runs, at the stop or at the next start (before it accepts a
    websocket); a kill -9 runs none, so the next start runs them all. The 300-client
    version: `python -m bench.stop`."""
    outcome = stop_bench.stop_and_restart(tmp_path, 40, stop)
    assert outcome.opened == 40, outcome
    assert outcome.missed == 0 and outcome.at_stop + outcome.at_start == 40, outcome
    if stop == stop_bench.CTRL_C:
        assert outcome.exit_code == 0 and outcome.exit_seconds < 5, outcome
    else:
        assert outcome.at_stop == 0, outcome
    assert (outcome.joined, outcome.who, outcome.rooms) == (
        ["newcomer"],
        ["newcomer"],
        [{"name": "before", "members": 1}],
    )
