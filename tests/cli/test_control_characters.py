"""Text a person or an agent typed (a model name, a note, a variable) is shown in tables
and fields with its control characters as escapes: a newline cannot add a row, an
escape sequence cannot recolour or clear the terminal."""

from __future__ import annotations

from ._cli import Runner

HOSTILE = "gpt\x1b[2J\x1b[31mred\nforged row"


def test_control_characters_in_recorded_text_are_escaped(run: Runner) -> None:
    iid = run.start()
    run.ok("record", iid, "--usage", f"model={HOSTILE}")
    run.ok("next", iid, "--data", f"note={HOSTILE}")
    history = run.ok("history", iid).stdout
    shown = run.ok("show", iid).stdout + run.ok("status", iid).stdout
    for output in (history, shown):
        assert "\x1b" not in output
        assert "forged row" not in output.replace("\\nforged row", "")
    assert "gpt\\x1b[2J\\x1b[31mred\\nforged row" in history
