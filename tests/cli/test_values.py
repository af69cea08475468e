"""Values the ``chatflow`` command reads and shows: ``K=V`` text that is not JSON stays
text, and the timeline's durations are the time each visit took."""

from __future__ import annotations

from ._cli import Runner


def test_var_values_that_python_but_not_json_would_parse_stay_text(run: Runner) -> None:
    iid = run.start("--var", "x=NaN", "--var", "y=Infinity", "--var", "n=3")
    assert run.json("show", iid)["variables"] == {"x": "NaN", "y": "Infinity", "n": 3}


def test_timeline_durations_are_never_negative(run: Runner) -> None:
    iid = run.start()
    run.ok("next", iid)
    timeline = run.json("show", iid)["timeline"]
    closed = [row for row in timeline if row["ended_at"] is not None]
    assert closed and all(row["duration_s"] >= 0 for row in closed)
    assert all(row["duration_s"] is None for row in timeline if row["ended_at"] is None)
