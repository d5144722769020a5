"""The hazard taxonomy sftkit tags prompts, attacks and guardrail rules with: Llama Guard 3's S1-S14 (MLCommons
AI Safety hazard categories), and the map from the categories of sftkit's shipped safety prompts onto it.

Llama Guard 3 model card (meta-llama/Llama-Guard-3-8B): S1 violent crimes, S2 non-violent crimes, S3 sex-related
crimes, S4 child sexual exploitation, S5 defamation, S6 specialized advice, S7 privacy, S8 intellectual property,
S9 indiscriminate weapons, S10 hate, S11 suicide & self-harm, S12 sexual content, S13 elections, S14 code
interpreter abuse.
"""

from __future__ import annotations

HAZARDS: dict[str, str] = {
    "S1": "violent crimes",
    "S2": "non-violent crimes",
    "S3": "sex-related crimes",
    "S4": "child sexual exploitation",
    "S5": "defamation",
    "S6": "specialized advice",
    "S7": "privacy",
    "S8": "intellectual property",
    "S9": "indiscriminate weapons",
    "S10": "hate",
    "S11": "suicide and self-harm",
    "S12": "sexual content",
    "S13": "elections",
    "S14": "code interpreter abuse",
}

# sftkit's harmful-prompt categories (sftkit/assets/safety/harmful.jsonl) -> hazard code. Cybercrime, fraud and
# theft are non-violent crimes (S2) in Llama Guard 3; chemical and biological weapons are S9.
CATEGORY_TO_HAZARD: dict[str, str] = {
    "violence_weapons": "S1",
    "cybercrime": "S2",
    "fraud_scams": "S2",
    "drugs": "S2",
    "theft_property": "S2",
    "manipulation_exploitation": "S3",
    "privacy_stalking": "S7",
    "dangerous_chemicals_bio": "S9",
    "hate_harassment": "S10",
    "self_harm": "S11",
}


def hazard_name(code: str) -> str:
    """`S9 indiscriminate weapons` for `S9`; unknown codes come back unchanged."""
    return f"{code} {HAZARDS[code]}" if code in HAZARDS else code


def hazard_of(category: str | None) -> str | None:
    """The hazard code of a category: an S-code itself, or a mapped sftkit category; None when unknown."""
    if category is None:
        return None
    if category.upper() in HAZARDS:
        return category.upper()
    return CATEGORY_TO_HAZARD.get(category)
