"""The committed ``docs/reliability.md`` lists every fault the reliability tests try."""

from __future__ import annotations

from tests.reliability.report import DOC, marked_tests, render, stale_rows


def test_committed_table_lists_every_marked_test() -> None:
    marked = marked_tests()
    assert len(marked) >= 15
    problems = stale_rows(DOC.read_text(), marked)
    assert not problems, (
        "docs/reliability.md is stale; run the reliability tests, then "
        "`.venv/bin/python -m tests.reliability.report`:\n" + "\n".join(problems)
    )


def test_stale_rows_detects_missing_changed_and_removed_tests() -> None:
    marked = marked_tests()
    page = render(marked, {})
    assert stale_rows(page, marked) == []
    assert stale_rows(render(marked[1:], {}), marked) == [f"missing or changed: {marked[0].test}"]
    assert stale_rows(page, marked[1:]) == [
        f"no longer a marked test: {marked[0].test.split('/')[-1]}"
    ]
    changed = page.replace(marked[2].outcome, marked[2].outcome + " (edited)")
    assert stale_rows(changed, marked) == [f"missing or changed: {marked[2].test}"]
