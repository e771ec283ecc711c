"""A nicotine status stated after the request (stop 27). A late 'current' counts as if timely
(facts.schema.json nicotine x-as-of-source may_add); any other late status is left out of
`status`, as it cannot show what held at the request. A late 'former' still says the patient
smoked at some time, which contradicts a timely 'never': before, it was dropped and the
never-user route met LF-NICOTINE (the approvable L4-L5 fusion approved under 2025.1 beside an
ex-smoker noted on 2025-07-01). Now the late status is kept apart (`late_status`, x-late-of)
and the nicotine module's never-user route fails beside a late status reporting use; the
abstinence route, which nothing late can meet, then pends for a cotinine.

Through FHIR the coded copy of the status (observation, x-as-of-source may_add of the module's
value set tobacco_use_reported) already failed the route, and still does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_fhir_coded import mapped, smoking, statuses, with_resources  # type: ignore[import-not-found]

from evaluator.language.policies import Library
from tests.reviewing import VERSIONS, check_probe, decide, shipped

REQUEST = "2025-06-20"


def _stated(*statements: tuple[str, str]) -> dict[str, Any]:
    """The approvable L4-L5 fusion whose nicotine status is the (value, document date) given."""
    data = shipped("l4-l5-approvable")
    nicotine = data["nicotine"]
    nicotine.pop("source", None)
    nicotine["status"] = {
        "statements": [
            {"value": value, "source": {"document": "clinic_note", "date": date}}
            for value, date in statements
        ]
    }
    return data


@pytest.mark.parametrize("policy", VERSIONS)
@pytest.mark.parametrize(
    ("late", "expected"),
    [
        ("former", "not_documented"),
        # counted as if timely: the two disagree (rule 9)
        ("current", "not_documented"),
        # says nothing against "never"
        ("never", "met"),
    ],
)
def test_a_late_status_beside_a_timely_never(
    late: str, expected: str, policy: str, library: Library
) -> None:
    data = _stated(("never", "2025-01-15"), (late, "2025-07-01"))
    check_probe(data, "LF-NICOTINE", expected, library, policy)


@pytest.mark.parametrize("policy", VERSIONS)
def test_late_statuses_that_disagree_leave_the_never_route_unknown(
    policy: str, library: Library
) -> None:
    data = _stated(("never", "2025-01-15"), ("never", "2025-07-01"), ("former", "2025-07-02"))
    check_probe(data, "LF-NICOTINE", "not_documented", library, policy)


@pytest.mark.parametrize("policy", VERSIONS)
def test_a_late_former_alone_demonstrates_nothing(policy: str, library: Library) -> None:
    # Not the status at the request: the clause stays not documented, as with no status.
    data = _stated(("former", "2025-07-01"))
    determination, found = decide(data, library, policy)
    assert found["LF-NICOTINE"] == "not_documented"
    assert determination != "medically_necessary"


@pytest.mark.parametrize(
    "effective",
    [{"effectiveDateTime": "2025-07-01"}, {"effectivePeriod": {"start": "2025-07-01"}}],
    ids=["instant", "open-period"],
)
def test_a_late_fhir_former_status_beside_a_never(
    effective: dict[str, Any], tmp_path: Path
) -> None:
    late = smoking("late", "8517006")
    del late["effectiveDateTime"]
    late.update(effective)
    result = mapped(with_resources(smoking("timely", "266919005"), late), tmp_path)
    assert result.data["nicotine"]["status"]["statements"][1]["value"] == "former"
    for policy in VERSIONS:
        assert statuses(result, policy)["LF-NICOTINE"] == "not_documented"
