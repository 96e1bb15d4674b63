"""Every command answers bad arguments and bad settings with one line on stderr and exit status 2.

Real processes, as a user runs them: the errors come before any model is loaded, so each
run takes well under a second.
"""

from __future__ import annotations

import os

import pytest

from tests.fresh_python import run_module


def run(module: str, *args: str, status: int = 2, **env: str) -> str:
    """``python -m module args...`` with ``env`` added; asserts exit ``status`` and one ``error:`` line."""
    done = run_module(module, *args, timeout=60, env={**os.environ, **env})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == status, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("app", [], "the following arguments are required: command (see python -m app --help)"),
        ("app", ["classify", "photos"], "the following arguments are required: --out"),
        ("app", ["serve", "--port", "99999"], "argument --port: 99999 is not a port (1 to 65535)"),
        ("app", ["serve", "--port", "http"], "argument --port: not a whole number: 'http'"),
        ("app", ["classify", "photos", "--out", "x.jsonl", "--actors", "0"], "--actors: 0 is not at least 1"),
        ("enrolment", ["serve", "--port", "0"], "argument --port: 0 is not a port"),
        # The old name of the trainer's command, kept for one release (README, "Enrol people").
        ("training.enrolment", ["serve", "--port", "0"], "argument --port: 0 is not a port"),
        ("training", ["train", "--data", "x", "--epochs", "1.5"], "--epochs: not a whole number: '1.5'"),
    ],
)
def test_bad_arguments(module: str, args: list[str], message: str) -> None:
    assert message in run(module, *args)


@pytest.mark.parametrize(
    ("module", "args", "env", "message"),
    [
        ("app", ["serve"], {"PORT": "abc"}, "PORT='abc': Input should be a valid integer"),
        ("app", ["serve"], {"PORT": "70000"}, "PORT='70000': Input should be less than or equal to 65535"),
        ("app", ["serve"], {"LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD': Input should be 'CRITICAL', "),
        ("app", ["classify", "x", "--out", "x.jsonl"], {"MAX_UPLOAD_BYTES": "-1"}, "MAX_UPLOAD_BYTES='-1'"),
        ("enrolment", ["check"], {"ENROL_LOG_LEVEL": "loud"}, "ENROL_LOG_LEVEL='LOUD'"),
        ("enrolment", ["check"], {"ENROL_PORT": "x"}, "ENROL_PORT='x': Input should be a valid"),
    ],
)
def test_bad_settings_name_the_variable(
    module: str, args: list[str], env: dict[str, str], message: str
) -> None:
    line = run(module, *args, **env)
    assert line.startswith("error: a setting in the environment or .env: ")
    assert message in line


def test_every_bad_setting_is_named_at_once() -> None:
    line = run("app", "serve", PORT="abc", CLASSIFIER_BACKEND="xgboost")
    assert "PORT='abc'" in line and "CLASSIFIER_BACKEND='xgboost': Input should be 'svm' or 'cnn'" in line


def test_a_level_in_lower_case_is_read() -> None:
    """LOG_LEVEL=debug is how people write it; the first error is then the missing folder's."""
    assert run("app", "classify", "/no/such/folder", "--out", "x.jsonl", LOG_LEVEL="debug") == (
        "error: /no/such/folder is not a folder"
    )


def test_an_output_folder_that_does_not_exist_is_found_before_the_model_loads(tmp_path) -> None:
    out = tmp_path / "no" / "such" / "rows.jsonl"
    assert run("app", "classify", str(tmp_path), "--out", str(out)) == (
        f"error: --out: the folder {out.parent} does not exist"
    )


def test_a_missing_model_is_one_line(tmp_path) -> None:
    """Exit 1, as for a folder with nothing to classify: the arguments were fine, the setup is not."""
    line = run(
        "app",
        "classify",
        str(tmp_path),
        "--out",
        str(tmp_path / "rows.jsonl"),
        status=1,
        ARTIFACTS_DIR=str(tmp_path / "none"),
    )
    assert line == f"error: no model for backend 'svm': cannot read {tmp_path / 'none' / 'svm' / 'LATEST'}"
