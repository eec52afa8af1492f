"""The persistent compilation cache: where each setting puts it, and a repeated run that reads
its train step from it instead of compiling."""

import json

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from lib import compile_cache, train
from tests.helpers import digits_config


@pytest.fixture
def suite_cache():
    """Puts back the suite's cache directory (tests/conftest.py) after the test."""
    before = jax.config.jax_compilation_cache_dir
    yield before
    compilation_cache.set_cache_dir(before)
    compilation_cache.reset_cache()


def test_directory_of_each_setting(suite_cache, tmp_path):
    workdir = tmp_path / "runs" / "seed0"
    assert compile_cache.directory("auto", workdir) == suite_cache  # JAX's own setting wins
    assert compile_cache.directory("/x/cache", workdir) == "/x/cache"
    jax.config.update("jax_compilation_cache_dir", None)
    assert compile_cache.directory("auto", workdir) == str(tmp_path / "runs" / ".jax_cache")


def test_off_goes_back_to_the_directory_jax_started_with(suite_cache, tmp_path):
    """The suite's JAX_COMPILATION_CACHE_DIR, not a directory an earlier run enabled."""
    compile_cache.enable(str(tmp_path / "elsewhere"), tmp_path)
    assert compile_cache.enable("off", tmp_path) == suite_cache
    assert jax.config.jax_compilation_cache_dir == suite_cache


def test_a_workdir_from_before_the_key_existed_resumes(tmp_path):
    """compile_cache is operational: a saved config without it (or with another value) is the
    same run."""
    config = digits_config(steps=4)
    first = train.run(config, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    del saved["compile_cache"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    (tmp_path / "run" / "results.json").unlink()
    config.compile_cache = "off"
    assert train.run(config, tmp_path / "run")["eval/loss"] == first["eval/loss"]


def test_a_repeated_run_reads_its_train_step_from_the_cache(suite_cache, tmp_path):
    config = digits_config(steps=4)
    config.compile_cache = str(tmp_path / "cache")
    first = train.run(config, tmp_path / "a")
    assert jax.config.jax_compilation_cache_dir == config.compile_cache
    assert any((tmp_path / "cache").iterdir())
    second = train.run(config, tmp_path / "b")  # same config, a sibling workdir
    assert first["wall_compile_cache_hits_this_start"] == 0
    assert second["wall_compile_cache_hits_this_start"] == 1
    assert second["eval/loss"] == first["eval/loss"]
