"""The one way Lua runs: files with `--- @include` lines, EVALSHA, reloaded after SCRIPT FLUSH."""
from config.redis_scripts import ScriptSet
from dialer import keys
from dialer.dispatch_lock import DispatchLock


def test_an_include_line_is_replaced_by_the_named_file(tmp_path):
    (tmp_path / "_prelude.lua").write_text("local answer = 42\n")
    (tmp_path / "answer.lua").write_text("-- answer: returns 42\n--- @include _prelude\nreturn answer\n")
    scripts = ScriptSet(tmp_path, ("answer",))
    assert "@include" not in scripts.sources["answer"] and "local answer = 42" in scripts.sources["answer"]


def test_scripts_are_loaded_again_after_redis_forgot_them(tmp_path, redis_client):
    (tmp_path / "echo.lua").write_text("return ARGV[1]\n")
    scripts = ScriptSet(tmp_path, ("echo",))
    assert scripts.run(redis_client, "echo", [], ["one"]) == "one"
    redis_client.script_flush()
    assert scripts.run(redis_client, "echo", [], ["two"]) == "two"
    redis_client.script_flush()
    commands = [scripts.command("echo", [], [value]) for value in ("a", "b")]
    assert scripts.run_many(redis_client, commands) == ["a", "b"]


def test_the_dispatch_lock_is_released_only_by_its_holder(redis_client):
    with DispatchLock(7) as held:
        assert held
        redis_client.set(keys.dispatch_lock(7), "another holder")
    assert redis_client.get(keys.dispatch_lock(7)) == "another holder"
    redis_client.delete(keys.dispatch_lock(7))
    lock = DispatchLock(7)
    with lock as held:
        assert held and lock.extend()
    assert not redis_client.exists(keys.dispatch_lock(7))
