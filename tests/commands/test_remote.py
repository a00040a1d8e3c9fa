"""`tidings publish|send|broadcast|history|presence|inbox|info|disconnect` against a real
node: human and --json output, URL and key from flags or TIDINGS_*, exit codes 0/1/2/3."""

from __future__ import annotations

import json

import pytest

from tests.conftest import free_port


@pytest.fixture
async def keyed(make_server):
    async with make_server(api_key="cli-test-key") as node:
        yield node


def _env(node, key: str | None = "cli-test-key") -> dict[str, str]:
    env = {"TIDINGS_URL": node.url}
    if key:
        env["TIDINGS_API_KEY"] = key
    return env


async def test_publish_prints_the_position_and_json_gives_it_whole(tidings, keyed):
    human = await tidings("publish", "room:lobby", '{"text":"hi"}', "--source", "ops",
                          env=_env(keyed))
    machine = await tidings("publish", "room:lobby", "2", "--json", env=_env(keyed))
    assert human.returncode == 0 and human.stdout.startswith("room:lobby: offset 1, epoch ")
    assert json.loads(machine.stdout) == {"channel": "room:lobby", "offset": 2,
                                          "epoch": human.stdout.split("epoch ")[1].strip()}


async def test_send_and_broadcast_and_data_from_standard_input(tidings, keyed):
    sent = await tidings("send", "bob", "-", "--json", env=_env(keyed), stdin='{"text":"psst"}')
    everyone = await tidings("broadcast", '"release"', env=_env(keyed))
    page = await tidings("history", "user:bob", "--json", env=_env(keyed))
    assert json.loads(sent.stdout)["channel"] == "user:bob"
    assert everyone.stdout.startswith("broadcast: offset 1")
    assert json.loads(page.stdout)["publications"][0]["data"] == {"text": "psst"}


async def test_history_lists_publications_newest_first_with_reverse(tidings, keyed):
    for n in range(3):
        await tidings("publish", "room:h", json.dumps({"n": n}), "--source", "billing",
                      env=_env(keyed))
    result = await tidings("history", "room:h", "--reverse", "--limit", "2", env=_env(keyed))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("room:h: last offset 3") and "2 shown" in lines[0]
    assert lines[1].split()[0] == "3" and '{"n":2}' in lines[1] and "source=billing" in lines[1]
    assert lines[2].split()[0] == "2"


async def test_presence_info_and_disconnect(tidings, keyed):
    alice = await keyed.client("alice")
    await alice.call("subscribe", {"channel": "room:p"})
    presence = await tidings("presence", "room:p", env=_env(keyed))
    info = await tidings("info", "--json", env=_env(keyed))
    kicked = await tidings("disconnect", "alice", "--no-reconnect", env=_env(keyed))
    assert "room:p: 1 connection(s)" in presence.stdout and "alice" in presence.stdout
    assert json.loads(info.stdout)["node"] == keyed.node.name
    assert kicked.returncode == 0 and kicked.stdout.startswith("alice: 1 connection(s) closed")
    assert (await alice.closed())[0] == 4502


async def test_flags_override_the_environment(tidings, keyed):
    result = await tidings("info", "--url", keyed.url, "--api-key", "cli-test-key",
                           env={"TIDINGS_URL": "http://127.0.0.1:1", "TIDINGS_API_KEY": "wrong"})
    assert result.returncode == 0 and keyed.node.name in result.stdout


async def test_an_error_answer_exits_1_with_its_code(tidings, keyed):
    wrong_key = await tidings("info", env=_env(keyed, "wrong"))
    bad_channel = await tidings("publish", "nowhere:x", "1", env=_env(keyed))
    assert wrong_key.returncode == 1 and "error 105 (HTTP 401)" in wrong_key.stderr
    assert bad_channel.returncode == 1 and "error 107" in bad_channel.stderr


async def test_data_that_is_not_json_exits_2(tidings, keyed):
    result = await tidings("publish", "room:lobby", "hello", env=_env(keyed))
    assert result.returncode == 2 and "must be JSON" in result.stderr


async def test_missing_arguments_exit_2(tidings):
    assert (await tidings("publish", "room:lobby")).returncode == 2


async def test_no_node_there_exits_3(tidings):
    result = await tidings("info", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert result.returncode == 3 and "did not answer" in result.stderr


async def test_inbox_prints_the_users_message_center(tidings, keyed):
    await tidings("send", "bob", '{"text":"invoice"}', "--source", "billing", env=_env(keyed))
    result = await tidings("inbox", "bob", "--json", env=_env(keyed))
    assert result.returncode == 0 and "billing" in result.stdout
