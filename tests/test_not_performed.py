"""A study documented as not performed demonstrates nothing (domain.md section 3 item 1).

Its route is false, not unknown, and the evidence says "not performed".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator import api
from evaluator.authoring.testing import load_suite
from evaluator.decide.evidence import evidence_lines
from evaluator.language.model import Status
from evaluator.language.policies import Library
from evaluator.render import decision as render

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("policy", "clause"),
    [
        ("lumbar-decompression", "LD-IMAGING-CORRELATION"),
        ("lumbar-fusion", "LF-IMAGING-CORRELATION"),
    ],
)
def test_an_mri_not_performed_fails_correlation_and_says_so(policy: str, clause: str) -> None:
    library = Library()
    suite = load_suite(ROOT / "policies" / policy / "tests" / "edges.yaml", library)
    test = next(t for t in suite.tests if t.name == "mri-not-performed")
    decision = api.evaluate(test.case, suite.policy)
    result = next(c for c in decision.clauses if c.id == clause)
    assert result.status is Status.NOT_MET
    documented = [line.documented for line in evidence_lines(result)]
    assert any("not performed" in text for text in documented), documented
    assert "not performed" in render.decision_text(decision)


def test_flexion_extension_not_performed_is_named_in_the_instability_evidence() -> None:
    library = Library()
    suite = load_suite(ROOT / "policies" / "lumbar-fusion" / "tests" / "edges.yaml", library)
    test = next(t for t in suite.tests if t.name == "flexion-extension-not-performed")
    decision = api.evaluate(test.case, suite.policy)
    result = next(c for c in decision.clauses if c.id == "LF-INSTABILITY")
    assert result.status is Status.NOT_MET
    motion = [
        line
        for line in evidence_lines(result)
        if line.condition == "there is a dynamic study (not performed)"
        and "not performed" in line.documented
    ]
    assert motion, [
        (line.answer, line.condition, line.documented) for line in evidence_lines(result)
    ]
