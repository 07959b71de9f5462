"""
The figures of METR's RE-Bench report, computed from the raw logs every time (score entries,
the attempt clock, survey answers) — never from stored summaries such as
``Attempt.final_normalized_score``.

Definitions (each used by the page, the CSV and the tests):

- **Points** of an attempt: its score entries other than scoring errors, in log order, as
  ``(elapsed_seconds, normalized)``, the normalized score recomputed from the raw score with
  the attempt's environment version (``scoring.normalization``); ``None`` for an invalid solution.
- **Best-so-far at t**: with aggregation ``best`` the highest normalized score among points
  with ``elapsed <= t``; with ``last`` the latest such point (the final submission counts; if it
  was an invalid solution nothing counts — as ``scoring.services.score_counting_entry`` says).
  When nothing counts an attempt scores 0, the starting solution, by definition of the normalization.
- **Final score**: best-so-far at the end. An attempt with no successful entry scores 0 too and is
  counted in ``without_score``.
- **score@k**: the expected maximum final score over k attempts drawn without replacement from
  the n in the pool. With the scores sorted ``x_(1) <= ... <= x_(n)``, the maximum of a k-subset
  is ``x_(i)`` for exactly ``C(i-1, k-1)`` of the ``C(n, k)`` subsets, so::

      score@k = sum_{i=k..n} C(i-1, k-1) / C(n, k) * x_(i)

  (score@1 is the mean; score@n the maximum.)
- **Scorings per hour**: scoring runs the expert asked for (button or ``score`` command, any
  status) per hour of attempt time used (``clock.time_used``); pooled over the group, and the mean
  of the per-attempt rates.
- **Matched expectations**: among submitted surveys that answer ``score_matched_expectations``
  (or ``score_matched``, the default survey's id),
  the share answering ``yes`` (and ``yes`` or ``partly``). ``None`` when no survey asks it.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from math import comb

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt
from baseliner.attempts.states import FINISHED_STATES
from baseliner.catalog.models import Aggregation
from baseliner.scoring.models import ScoreEntry
from baseliner.scoring.normalization import normalize_for
from baseliner.surveys.models import SurveyResponse

CHECKPOINT_HOURS = (1, 2, 4, 8)
THRESHOLD = 0.05
# The survey question "did the score match your expectations?" (yes/partly/no). The default
# survey (baseliner/surveys/defaults.py) calls it score_matched; the first id found counts.
SURVEY_QUESTIONS = ("score_matched_expectations", "score_matched")
EXPERT_TRIGGERS = (ScoreEntry.Trigger.BUTTON, ScoreEntry.Trigger.COMMAND)


def best_so_far(points: list[tuple[float, float | None]], t: float, *, aggregation: str) -> float:
    """The attempt's score at attempt time ``t`` (see the module docstring). ``points`` are in
    log order (by sequence)."""
    seen = [(e, s) for e, s in points if e <= t]
    if aggregation == Aggregation.LAST:
        if not seen:
            return 0.0
        # The latest entry so far; among equal times the later one in the log.
        latest = max(range(len(seen)), key=lambda i: (seen[i][0], i))
        value = seen[latest][1]
        return 0.0 if value is None else value
    values = [s for _, s in seen if s is not None]
    return max(values) if values else 0.0


def has_counting_entry(points, *, aggregation: str) -> bool:
    """Whether some entry counts at the end (a score, not the starting solution by default)."""
    if aggregation == Aggregation.LAST:
        return bool(points) and points[-1][1] is not None
    return any(s is not None for _, s in points)


def entry_point(*, environment, elapsed: float, raw: float | None, status: str):
    """An entry as a point: None for a scoring error (it never counts), ``(elapsed, None)`` for
    an invalid solution, ``(elapsed, normalized)`` for a score."""
    if status == ScoreEntry.Status.ERROR:
        return None
    if status != ScoreEntry.Status.OK:
        return (elapsed, None)
    normalized = normalize_for(environment, raw)
    return None if normalized is None else (elapsed, normalized)


def score_at_k(scores: list[float], k: int) -> float:
    """Expected maximum over ``k`` of ``scores`` drawn without replacement (exact)."""
    n = len(scores)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and {n}, not {k}.")
    xs = sorted(scores)
    total = comb(n, k)
    return sum(comb(i - 1, k - 1) * xs[i - 1] for i in range(k, n + 1)) / total


@dataclass
class AttemptFigures:
    attempt_id: int
    environment: str
    environment_version: int
    cohort: str
    expert: str
    aggregation: str
    points: list[tuple[float, float | None]]
    final: float
    has_score: bool
    at_hours: dict[int, float]
    scorings: int
    hours_used: float
    survey_answer: str | None
    is_invalid: bool

    @property
    def scorings_per_hour(self) -> float | None:
        return self.scorings / self.hours_used if self.hours_used > 0 else None


@dataclass
class GroupFigures:
    environment: str
    attempts: list[AttemptFigures] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.attempts)

    @property
    def finals(self) -> list[float]:
        return [a.final for a in self.attempts]

    @property
    def without_score(self) -> int:
        return sum(1 for a in self.attempts if not a.has_score)

    @property
    def share_above_threshold(self) -> float | None:
        return sum(1 for s in self.finals if s > THRESHOLD) / self.n if self.n else None

    def _survey(self):
        return [a.survey_answer for a in self.attempts if a.survey_answer is not None]

    @property
    def survey_answered(self) -> int:
        return len(self._survey())

    @property
    def share_matched(self) -> float | None:
        answers = self._survey()
        return sum(1 for x in answers if x == "yes") / len(answers) if answers else None

    @property
    def share_matched_or_partly(self) -> float | None:
        answers = self._survey()
        return sum(1 for x in answers if x in ("yes", "partly")) / len(answers) if answers else None

    def at_hours(self) -> list[dict]:
        rows = []
        for h in CHECKPOINT_HOURS:
            values = [a.at_hours[h] for a in self.attempts]
            rows.append({
                "hours": h,
                "mean": statistics.fmean(values) if values else None,
                "median": statistics.median(values) if values else None,
            })
        return rows

    def score_at_k(self) -> list[dict]:
        finals = self.finals
        return [{"k": k, "score": score_at_k(finals, k)} for k in range(1, len(finals) + 1)]

    @property
    def scorings_per_hour_pooled(self) -> float | None:
        hours = sum(a.hours_used for a in self.attempts)
        return sum(a.scorings for a in self.attempts) / hours if hours > 0 else None

    @property
    def scorings_per_hour_mean(self) -> float | None:
        rates = [r for a in self.attempts if (r := a.scorings_per_hour) is not None]
        return statistics.fmean(rates) if rates else None

    def histogram(self, width: float = 0.1) -> list[dict]:
        """Counts of final scores in bins of ``width`` (scores may be below 0 or above 1)."""
        if not self.attempts:
            return []
        lo = math.floor(min(min(self.finals), 0.0) / width)
        hi = math.floor(max(max(self.finals), 1.0) / width)
        counts = {b: 0 for b in range(lo, hi + 1)}
        for s in self.finals:
            counts[math.floor(s / width)] += 1
        return [{"from": round(b * width, 6), "to": round((b + 1) * width, 6), "count": c} for b, c in sorted(counts.items())]

    def curve(self, step_seconds: int = 900) -> list[dict]:
        """Mean and median best-so-far every ``step_seconds`` up to the longest time used."""
        if not self.attempts:
            return []
        end = max(max((a.hours_used for a in self.attempts), default=0) * 3600, 8 * 3600)
        out = []
        for t in range(0, int(end) + 1, step_seconds):
            values = [best_so_far(a.points, t, aggregation=a.aggregation) for a in self.attempts]
            out.append({"seconds": t, "mean": statistics.fmean(values), "median": statistics.median(values)})
        return out

    def summary(self) -> dict:
        return {
            "environment": self.environment,
            "n": self.n,
            "without_score": self.without_score,
            "share_above_threshold": self.share_above_threshold,
            "survey_answered": self.survey_answered,
            "share_matched": self.share_matched,
            "share_matched_or_partly": self.share_matched_or_partly,
            "scorings_per_hour_pooled": self.scorings_per_hour_pooled,
            "scorings_per_hour_mean": self.scorings_per_hour_mean,
            "mean_final": statistics.fmean(self.finals) if self.n else None,
            "median_final": statistics.median(self.finals) if self.n else None,
        }


def analysis_attempts(*, environment: str | None = None, cohort: int | str | None = None, include_invalid: bool = False):
    """Finished attempts in scope: ended or surveyed, started, valid unless asked otherwise."""
    qs = Attempt.objects.filter(state__in=FINISHED_STATES, started_at__isnull=False).select_related(
        "environment", "expert", "assignment__cohort"
    )
    if environment:
        qs = qs.filter(environment__slug=environment)
    if cohort not in (None, ""):
        qs = qs.filter(assignment__cohort_id=int(cohort))
    if not include_invalid:
        qs = qs.filter(is_invalid=False)
    return qs.order_by("environment__slug", "pk")


def _survey_answer(answers) -> str | None:
    if not isinstance(answers, dict):
        return None
    qid = next((q for q in SURVEY_QUESTIONS if q in answers), None)
    if qid is None:
        return None
    value = answers[qid]
    if value is None:
        return None
    value = str(value).strip().lower()
    return value or None


def _score_logs(attempts) -> tuple[dict[int, list[tuple[float, float | None]]], dict[int, int]]:
    """Points (see the module docstring) and expert-requested scoring counts per attempt."""
    envs = {a.pk: a.environment for a in attempts}
    points: dict[int, list] = defaultdict(list)
    scorings: dict[int, int] = defaultdict(int)
    for attempt_id, elapsed, raw, status, trigger in (
        ScoreEntry.objects.filter(attempt_id__in=list(envs)).order_by("attempt_id", "sequence")
        .values_list("attempt_id", "elapsed_seconds", "raw_score", "status", "trigger").iterator()
    ):
        if trigger in EXPERT_TRIGGERS:
            scorings[attempt_id] += 1
        point = entry_point(environment=envs[attempt_id], elapsed=elapsed, raw=raw, status=status)
        if point is not None:
            points[attempt_id].append(point)
    return points, scorings


def attempt_points(attempts) -> dict[int, list[tuple[float, float]]]:
    return _score_logs(list(attempts))[0]


def attempt_figures(attempts) -> list[AttemptFigures]:
    """Per-attempt figures, reading the score log and surveys in two queries."""
    attempts = list(attempts)
    points_by_attempt, scorings = _score_logs(attempts)
    surveys = dict(
        SurveyResponse.objects.filter(attempt_id__in=[a.pk for a in attempts], submitted_at__isnull=False)
        .values_list("attempt_id", "answers")
    )
    out = []
    for a in attempts:
        env = a.environment
        points = points_by_attempt.get(a.pk, [])
        cohort = a.assignment.cohort
        out.append(AttemptFigures(
            attempt_id=a.pk,
            environment=env.slug,
            environment_version=env.version,
            cohort=cohort.name if cohort else "",
            expert=a.expert.get_username(),
            aggregation=env.aggregation,
            points=points,
            final=best_so_far(points, math.inf, aggregation=env.aggregation),
            has_score=has_counting_entry(points, aggregation=env.aggregation),
            at_hours={h: best_so_far(points, h * 3600, aggregation=env.aggregation) for h in CHECKPOINT_HOURS},
            scorings=scorings.get(a.pk, 0),
            hours_used=clock.time_used(a) / 3600,
            survey_answer=_survey_answer(surveys.get(a.pk)),
            is_invalid=a.is_invalid,
        ))
    return out


def analysis_groups(**filters) -> list[GroupFigures]:
    """One group per environment (slug) among the attempts the filters select."""
    groups: dict[str, GroupFigures] = {}
    for fig in attempt_figures(analysis_attempts(**filters)):
        groups.setdefault(fig.environment, GroupFigures(environment=fig.environment)).attempts.append(fig)
    return list(groups.values())
