from sftkit.safety.hazards import CATEGORY_TO_HAZARD, HAZARDS, hazard_name, hazard_of
from sftkit.safety.prompts import load_prompts


def test_every_shipped_harmful_category_maps_to_a_hazard_code():
    categories = {p.category for p in load_prompts("harmful", None, 0)}
    assert categories == set(CATEGORY_TO_HAZARD)
    assert set(CATEGORY_TO_HAZARD.values()) <= set(HAZARDS)
    assert list(HAZARDS) == [f"S{i}" for i in range(1, 15)]


def test_codes_and_names():
    assert hazard_of("self_harm") == "S11" and hazard_of("s9") == "S9" and hazard_of("nope") is None
    assert hazard_of(None) is None
    assert hazard_name("S9") == "S9 indiscriminate weapons" and hazard_name("X") == "X"
