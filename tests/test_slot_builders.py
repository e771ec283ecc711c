"""What `decision._slots` builders make is what the constructors make (issue 10 review): equal,
hash-equal where the class hashes, frozen; and a class whose fields change fails loudly at
import, never leaving a slot unset.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.decide import decision
from evaluator.language.model import Status
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


def _again(obj: Any) -> Any:
    """The object made again by its constructor, from its own fields."""
    return type(obj)(**{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})


def test_every_built_object_is_the_one_its_constructor_makes() -> None:
    library = Library()
    built = 0
    for path in EXAMPLES:
        for line in api.review_case(load_case(path), library).lines:
            made = line.decision
            if made is None:
                continue
            assert _again(made) == made
            assert repr(_again(made)) == repr(made)
            with pytest.raises(dataclasses.FrozenInstanceError):
                made.case_id = "other"  # type: ignore[misc]
            for clause in made.clauses:
                assert _again(clause) == clause
                assert hash(_again(clause)) == hash(clause)
                with pytest.raises(dataclasses.FrozenInstanceError):
                    clause.status = Status.MET  # type: ignore[misc]
                for evidence in clause.evidence:
                    assert _again(evidence) == evidence
                    assert hash(_again(evidence)) == hash(evidence)
                    for view in evidence.facts:
                        assert _again(view) == view
                        assert hash(_again(view)) == hash(view)
                built += 1
    assert built > len(EXAMPLES)


def test_a_field_added_to_a_built_class_fails_loudly() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Grown:
        type: str
        id: str
        values: tuple[tuple[str, Any], ...]
        source: str | None
        added: int = 0

    with pytest.raises(TypeError, match="fields"):
        decision._slots(Grown, "type", "id", "values", "source")
    assert len(decision._DECISION) == len(dataclasses.fields(decision.Decision))
