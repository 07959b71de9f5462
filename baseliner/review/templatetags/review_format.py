"""How review pages show structured values: JSON as a reader expects it, not Python's repr."""
import json

from django import template

register = template.Library()


@register.filter
def as_json(value) -> str:
    """``{'time_ms': 1.2}`` -> ``{"time_ms": 1.2}`` (indented, keys sorted, non-ASCII kept);
    empty values -> "". Escaped by the template like any other text."""
    if value in (None, "", {}, []):
        return ""
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)
