"""docs/canned-estimators.md, run: its definition exports the LinearClassifier model_dir the
real Estimator trained (the doc's example is that model), and the export serves what the
Estimator's own export served."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from canned_support import DATA, assert_matches, reference, serialized_examples
from estimator_support import run_serving_v1

DOC = Path(__file__).resolve().parents[4] / "docs" / "canned-estimators.md"
NAME = "linear_classifier"


def test_the_doc_s_definition_exports_the_estimator_s_model_dir(tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    model_dir = tmp_path / "census"
    shutil.copytree(DATA / NAME / "model_dir", model_dir, ignore=shutil.ignore_patterns("export"))
    export_dir = tmp_path / "exports" / "census" / "1"
    assert code.count('"/models/census"') == 1 and code.count('"/exports/census/1"') == 1
    code = code.replace('"/models/census"', repr(str(model_dir)))
    code = code.replace('"/exports/census/1"', repr(str(export_dir)))
    namespace: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), namespace)

    assert sorted(p.name for p in export_dir.iterdir()) == ["saved_model.pb", "variables"]
    expected = reference(NAME)["serving"]
    served = run_serving_v1(export_dir, serialized_examples(NAME))
    assert sorted(served) == sorted(expected)
    for signature, outputs in served.items():
        for key, values in outputs.items():
            assert_matches(values, expected[signature][key], f"{signature} {key}")
