import multiprocessing
from pathlib import Path

import pytest

from storycore.env import EnvError, env_bool, env_int, env_list, env_name_patterns, secret_key_from


def test_env_bool_reads_common_spellings(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "off")
    assert env_bool("FLAG", True) is False


def test_env_bool_rejects_a_typo_naming_the_variable(monkeypatch):
    monkeypatch.setenv("FLAG", "ture")
    with pytest.raises(EnvError, match="FLAG='ture' is not a boolean"):
        env_bool("FLAG", False)


def test_env_int_enforces_its_minimum(monkeypatch):
    monkeypatch.setenv("PORT", "0")
    with pytest.raises(EnvError, match="PORT=0 is below the minimum of 1"):
        env_int("PORT", 8000, minimum=1)
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(EnvError, match="not an integer"):
        env_int("PORT", 8000)


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , b.example,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_env_name_patterns_take_names_and_prefixes_only(monkeypatch):
    assert env_name_patterns("KEY_VARS", ["RUNPOD_*"]) == ["RUNPOD_*"]
    monkeypatch.setenv("KEY_VARS", "RUNPOD_*, MY_GPU_KEY")
    assert env_name_patterns("KEY_VARS", []) == ["RUNPOD_*", "MY_GPU_KEY"]
    for bad in ("*", "runpod_*", "RUN*POD", "RUNPOD-KEY"):
        monkeypatch.setenv("KEY_VARS", bad)
        with pytest.raises(EnvError, match=r"KEY_VARS: .* is neither a variable name nor a prefix"):
            env_name_patterns("KEY_VARS", [])


def test_a_generated_secret_key_is_kept_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    path = tmp_path / "var" / "secret_key"
    first = secret_key_from("SECRET_KEY", path)
    assert len(first) > 40
    assert path.stat().st_mode & 0o077 == 0
    assert secret_key_from("SECRET_KEY", path) == first
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert secret_key_from("SECRET_KEY", path) == "from-env"


def _key_in(path: str) -> str:
    return secret_key_from("SECRET_KEY", Path(path))


def test_processes_starting_together_on_a_fresh_folder_share_one_key(tmp_path, monkeypatch):
    """The test stacks and a supervisor start processes at once: none may fail on a half-made key."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    path = tmp_path / "var" / "secret_key"
    with multiprocessing.get_context("fork").Pool(8) as pool:
        keys = pool.map(_key_in, [str(path)] * 32)
    assert len(set(keys)) == 1
    assert path.read_text() == keys[0]
    assert path.stat().st_mode & 0o077 == 0
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no leftovers
