"""Stitching a terminal's recordings for playback, and reading recordings cut short."""
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from baseliner.review import casts
from tests.review_data import finished_attempt, recording

pytestmark = pytest.mark.django_db


def lines(gen):
    return [json.loads(x) for x in gen]


def test_recordings_of_a_terminal_are_stitched_in_time_order_with_markers():
    a = finished_attempt()
    second = recording(a, [[0.5, "o", "again\r\n"], [1.0, "m", "file marker"]], offset=100, name="b")
    first = recording(a, [[0.5, "o", "hello\r\n"], [2.0, "o", "bye\r\n"]], offset=10, name="a")
    second.width = 120
    second.save(update_fields=["width"])
    Path(settings.RECORDINGS_DIR, second.path).write_text(
        json.dumps({"version": 2, "width": 120, "height": 24}) + "\n" + json.dumps([0.5, "o", "again\r\n"]) + "\n"
        + json.dumps([1.0, "m", "file marker"]) + "\n"
    )
    groups = casts.terminals(a)
    assert [r.pk for r in groups["main"]] == [first.pk, second.pk]
    out = lines(casts.stitched_cast(groups["main"], markers=[(a.started_at + timedelta(seconds=60), "Score #1: 0.5")]))
    assert (out[0]["width"], out[0]["height"]) == (80, 24)
    assert out[1:] == [
        [0.5, "o", "hello\r\n"],
        [2.0, "o", "bye\r\n"],
        [50.0, "m", "Score #1: 0.5"],
        [90.0, "r", "120x24"],
        [90.5, "o", "again\r\n"],
    ]


def test_a_recording_cut_short_is_read_up_to_the_last_whole_line():
    a = finished_attempt()
    rec = recording(a, [[0.5, "o", "ok\r\n"]])
    with open(Path(settings.RECORDINGS_DIR) / rec.path, "a") as f:
        f.write('[1.0, "o", "cut sho')
    assert lines(casts.stitched_cast([rec]))[1:] == [[0.5, "o", "ok\r\n"]]


def test_a_recording_path_outside_the_recordings_dir_is_ignored():
    a = finished_attempt()
    rec = recording(a, [[0.5, "o", "ok\r\n"]])
    rec.path = "../../etc/passwd"
    assert casts.recording_path(rec) is None


def test_export_groups_output_by_line_so_a_secret_typed_key_by_key_is_seen_whole():
    a = finished_attempt()
    rec = recording(a, [[0.1, "o", "$ "]] + [[0.2 + i / 100, "o", ch] for i, ch in enumerate("echo ghp_0123456789abcdefghij0123456789abcdef")]
                    + [[1.0, "o", "\r\n"], [1.5, "r", "100x30"], [2.0, "o", "done\r\n"]])
    out = lines(casts.export_cast(rec, scrub=lambda s: s.replace("ghp_0123456789abcdefghij0123456789abcdef", "<secret>")))
    assert out[1:] == [[0.1, "o", "$ echo <secret>\r\n"], [1.5, "r", "100x30"], [2.0, "o", "done\r\n"]]
