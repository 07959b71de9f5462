"""Normalization: start scores 0, reference scores 1, in both directions; bad constants refused."""
import math

import pytest
from django.core.exceptions import ValidationError

from baseliner.scoring.normalization import NormalizationError, is_better, normalize, validate_constants
from tests import factories


def test_higher_is_better():
    assert normalize(10.0, y_start=10.0, y_ref=20.0) == 0.0
    assert normalize(20.0, y_start=10.0, y_ref=20.0) == 1.0
    assert normalize(15.0, y_start=10.0, y_ref=20.0) == 0.5
    assert normalize(25.0, y_start=10.0, y_ref=20.0) == 1.5  # beating the reference is allowed
    assert normalize(5.0, y_start=10.0, y_ref=20.0) == -0.5


def test_lower_is_better():
    # log(ms): start 3.0, reference 1.0
    assert normalize(3.0, y_start=3.0, y_ref=1.0) == 0.0
    assert normalize(1.0, y_start=3.0, y_ref=1.0) == 1.0
    assert normalize(2.0, y_start=3.0, y_ref=1.0) == 0.5
    assert normalize(4.0, y_start=3.0, y_ref=1.0) == -0.5


@pytest.mark.parametrize("raw", [None, math.nan, math.inf, -math.inf])
def test_no_finite_raw_score_normalizes_to_none(raw):
    assert normalize(raw, y_start=0.0, y_ref=1.0) is None


def test_raw_comparison_follows_direction():
    assert is_better(2.0, 3.0, direction="lower") is True
    assert is_better(3.0, 2.0, direction="lower") is False
    assert is_better(3.0, 2.0, direction="higher") is True


def test_equal_constants_are_refused():
    with pytest.raises(NormalizationError, match="y_ref must differ from y_start"):
        validate_constants(y_start=1.0, y_ref=1.0, direction="higher")


def test_constants_pointing_the_wrong_way_are_refused():
    with pytest.raises(NormalizationError, match="Lower is better"):
        validate_constants(y_start=1.0, y_ref=2.0, direction="lower")
    with pytest.raises(NormalizationError, match="Higher is better"):
        validate_constants(y_start=2.0, y_ref=1.0, direction="higher")


@pytest.mark.django_db
def test_environment_validation_refuses_y_ref_equal_to_y_start():
    env = factories.environment(y_start=0.5, y_ref=0.5)
    with pytest.raises(ValidationError) as exc:
        env.full_clean()
    assert "y_ref must differ from y_start" in str(exc.value.message_dict["y_ref"])
