import json

import pytest

from cotprobe.forcing import scored_confidence
from cotprobe.scales import NUMERIC_100, VERBAL_10, get_scale


def test_verbal_scale_has_paper_midpoints():
    assert VERBAL_10.value("Almost no chance") == 0.05
    assert VERBAL_10.value("Almost certain") == 0.95
    assert VERBAL_10.values == tuple(round(0.05 + 0.1 * k, 2) for k in range(10))


@pytest.mark.parametrize("text, label", [
    ("Almost certain", "Almost certain"),
    ("**Confidence**: highly likely.", "Highly likely"),
    ("  *Very Good Chance*", "Very good chance"),
    ("Unlikely", "Unlikely"),
    ("Highly unlikely", "Highly unlikely"),  # not "Unlikely", the label inside it
    ("It is likely, not highly likely", "Likely"),  # the earliest stated label
    ("I am 90% sure", None),
    ("", None),
])
def test_verbal_parse(text, label):
    assert VERBAL_10.parse(text) == label


def test_numeric_scale_parses_percentages():
    assert NUMERIC_100.parse("85%") == "85"
    assert NUMERIC_100.value("85") == 0.85
    assert NUMERIC_100.parse("150") is None
    assert NUMERIC_100.parse("sure") is None


def test_custom_scale_from_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"labels": ["low", "high"], "values": [0.25, 0.75]}))
    scale = get_scale(str(path))
    assert scale.parse("High!") == "high" and scale.value("low") == 0.25
    with pytest.raises(ValueError, match="unknown confidence scale"):
        get_scale("nope")


def test_scored_confidence_normalises_over_labels():
    out = scored_confidence([0.0] * 10, VERBAL_10)
    assert sum(out["scored_probs"]) == pytest.approx(1.0)
    assert out["expected_value"] == pytest.approx(0.5)
    peaked = scored_confidence([-50.0] * 9 + [0.0], VERBAL_10)
    assert peaked["scored_label"] == "Almost certain" and peaked["expected_value"] == pytest.approx(0.95)
