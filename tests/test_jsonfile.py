"""cotprobe.jsonfile: one reader for the JSON files cotprobe is given (scales, manifests, prompts)."""

import json

import pytest

from cotprobe.jsonfile import JSONFileError, read_json, read_text


def test_an_object_is_read(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": [1, 2]}))
    assert read_json(path, "a test file") == {"a": [1, 2]}


def test_bad_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{\n  "a": 1\n  "b": 2\n}')
    with pytest.raises(JSONFileError) as info:
        read_json(path, "a test file")
    assert str(info.value).startswith(f"{path} line 3: not valid JSON (")
    assert info.value.line == 3 and info.value.problem == "not valid JSON"
    assert info.value.reason.startswith("not valid JSON (line 3: ")


def test_another_json_value_says_what_was_expected(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"x\.json: expected a JSON object \(a test file\)$"):
        read_json(path, "a test file")


def test_text_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{\n"a": "caf\xe9"}')
    with pytest.raises(JSONFileError, match=r"x\.json line 2: not UTF-8 text \(byte 0xe9\)"):
        read_json(path, "a test file")
    path.write_bytes("\ufeff{}".encode("utf-8"))
    assert read_text(path) == "{}" and read_json(path, "a test file") == {}


def test_a_missing_file_cannot_be_read(tmp_path):
    with pytest.raises(JSONFileError, match="nope.json: cannot be read"):
        read_json(tmp_path / "nope.json", "a test file")
