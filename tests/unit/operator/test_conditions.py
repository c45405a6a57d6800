import pytest

from acgs_operator.conditions import Condition, find, is_true, set_condition

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def test_new_condition_gets_the_current_time() -> None:
    out = set_condition([], "Valid", True, "Compiled", "ok", 3, T0)
    assert [c.wire() for c in out] == [
        {
            "type": "Valid",
            "status": "True",
            "reason": "Compiled",
            "message": "ok",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }
    ]


@pytest.mark.parametrize(
    ("before", "after", "moves"),
    [(True, True, False), (True, False, True), (False, False, False), ("Unknown", True, True)],
)
def test_transition_time_moves_only_when_status_changes(before: bool | str, after: bool, moves: bool) -> None:
    first = set_condition([], "Ready", before, "A", "a", 1, T0)  # type: ignore[arg-type]
    second = set_condition(first, "Ready", after, "B", "b", 2, T1)
    ready = find(second, "Ready")
    assert ready is not None
    assert ready.last_transition_time == (T1 if moves else T0)
    assert ready.reason == "B"


def test_other_conditions_are_kept_and_input_is_not_mutated() -> None:
    original = set_condition([], "Ready", True, "A", "", 1, T0)
    out = set_condition(original, "Valid", False, "B", "", 1, T1)
    assert [c.type for c in out] == ["Ready", "Valid"]
    assert len(original) == 1
    assert is_true(out, "Ready") and not is_true(out, "Valid") and not is_true(out, "Missing")


def test_long_messages_are_bounded() -> None:
    out = set_condition([], "Failed", True, "X", "x" * 10_000, None, T0)
    assert len(out[0].message) == 4096 and "observedGeneration" not in out[0].wire()


def test_conditions_read_back_from_the_api_server_parse() -> None:
    raw = {"type": "Ready", "status": "True", "reason": "R", "lastTransitionTime": T0, "unknownField": 1}
    assert Condition.model_validate(raw).status == "True"
