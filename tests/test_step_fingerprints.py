"""The refactoring safety net: fingerprints are reproducible and a changed number is located."""

import json
from pathlib import Path

from experiments import step_fingerprints

CASES = "option:label_smoothing"


def test_recorded_fingerprints_check_and_a_changed_component_is_named(tmp_path, capsys):
    saved = tmp_path / "prints.json"
    assert step_fingerprints.main(["record", "--out", str(saved), "--cases", CASES]) == 0
    prints = json.loads(saved.read_text())["fingerprints"]
    assert sorted(prints) == sorted(CASES.split(","))
    assert step_fingerprints.main(["check", "--against", str(saved), "--cases", CASES]) == 0
    assert "every fingerprint identical (1 case)" in capsys.readouterr().out

    record = json.loads(saved.read_text())
    record["fingerprints"]["option:label_smoothing"]["d_params"] = "0" * 16
    saved.write_text(json.dumps(record))
    assert step_fingerprints.main(["check", "--against", str(saved), "--cases", CASES]) == 1
    assert capsys.readouterr().out.strip() == "option:label_smoothing: d_params differ"


def test_an_unknown_case_is_one_line(tmp_path, capsys):
    assert step_fingerprints.main(["record", "--out", str(tmp_path / "p.json"),
                                   "--cases", "gan_zoo:big_gan"]) == 2
    assert "unknown case 'gan_zoo:big_gan'" in capsys.readouterr().err


def test_the_committed_record_holds_every_case():
    """A recipe or option added without its fingerprint would leave the next refactor of the
    step unchecked for it (`check` only says "new case" for it)."""
    record = json.loads((Path(__file__).parents[1] / "experiments" / "results"
                         / "step_fingerprints_cpu.json").read_text())
    assert sorted(record["fingerprints"]) == sorted(step_fingerprints.cases())
