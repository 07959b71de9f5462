"""
Score normalization: the one place that knows how raw scores become comparable.

RE-Bench normalizes so the starting solution scores 0 and the hidden reference 1::

    normalized = (y - y_start) / (y_ref - y_start)

The formula already handles lower-is-better scores (y_ref < y_start makes the denominator
negative), so a *normalized* score is always higher-is-better. What direction adds is a
consistency check on the constants, and the comparison of *raw* scores.

>>> normalize(2.0, y_start=3.0, y_ref=1.0)   # log(ms), lower is better
0.5
"""
import math

from baseliner.catalog.models import Direction


class NormalizationError(ValueError):
    pass


def validate_constants(*, y_start: float, y_ref: float, direction: str) -> None:
    """Refuse constants that cannot normalize: equal, non-finite, or pointing the wrong way."""
    if y_start is None or y_ref is None:
        raise NormalizationError("y_start and y_ref are both required.")
    if not (math.isfinite(y_start) and math.isfinite(y_ref)):
        raise NormalizationError("y_start and y_ref must be finite numbers.")
    if y_ref == y_start:
        raise NormalizationError(f"y_ref must differ from y_start (both are {y_start}): the score could not be normalized.")
    if direction == Direction.HIGHER_IS_BETTER and y_ref < y_start:
        raise NormalizationError(
            f"Higher is better, so the reference (y_ref={y_ref}) must score above the start (y_start={y_start})."
        )
    if direction == Direction.LOWER_IS_BETTER and y_ref > y_start:
        raise NormalizationError(
            f"Lower is better, so the reference (y_ref={y_ref}) must score below the start (y_start={y_start})."
        )


def normalize(raw: float | None, *, y_start: float, y_ref: float) -> float | None:
    """Normalized score of ``raw``, or None when there is no finite raw score."""
    if raw is None or not math.isfinite(raw):
        return None
    return (raw - y_start) / (y_ref - y_start)


def normalize_for(environment, raw: float | None) -> float | None:
    return normalize(raw, y_start=environment.y_start, y_ref=environment.y_ref)


def is_better(a: float, b: float, *, direction: str) -> bool:
    """Whether raw score ``a`` beats raw score ``b`` under ``direction``."""
    return a < b if direction == Direction.LOWER_IS_BETTER else a > b
