"""run.json's code version: the checkout's commit, or the one a copied tree names."""

from lib import runinfo


def test_git_commit_of_this_checkout():
    commit = runinfo.git_commit()
    assert len(commit.removesuffix("+dirty")) == 40


def test_git_commit_of_a_copy_without_git(tmp_path):
    assert runinfo.git_commit(tmp_path) == "unknown"
    (tmp_path / "GIT_COMMIT").write_text("0123abcd\n")  # as launch/tpu/setup.sh writes it
    assert runinfo.git_commit(tmp_path) == "0123abcd (copy without .git)"
