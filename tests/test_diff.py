"""The diff engine: a diff applied to its old snapshot gives the new one, exactly, and nothing else."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveupdates.diff import apply, diff, summarise
from liveupdates.diff.summary import summarise_created
from liveupdates.models import Snapshot

# A small alphabet makes repeated and near-identical paragraphs likely, the hard cases for hunks.
_small_text = st.text(alphabet="ab \n\u00e9\u4e2d", max_size=12)
_any_text = st.text(max_size=40)
_paragraph = st.one_of(_small_text, _any_text)
_date = st.one_of(st.none(), st.sampled_from(["2026-03-01T10:00:00Z", "2026-03-02T11:30:00Z"]))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    return Snapshot(
        id="story-1",
        feed="feed-1",
        url=draw(st.sampled_from(["", "https://a.example/x", "https://a.example/y"])),
        title=draw(_paragraph),
        summary=draw(_paragraph),
        authors=tuple(draw(st.lists(_small_text, max_size=3))),
        published=draw(_date),
        updated=draw(_date),
        paragraphs=tuple(draw(st.lists(_paragraph, max_size=12))),
        guid="g-1",
    )


@st.composite
def edited_pairs(draw: st.DrawFn) -> tuple[Snapshot, Snapshot]:
    """A snapshot and an edit of it: most real updates keep most paragraphs."""
    old = draw(snapshots())
    paragraphs = list(old.paragraphs)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["insert", "delete", "change"]))
        at = draw(st.integers(0, len(paragraphs)))
        if action == "insert":
            paragraphs.insert(at, draw(_paragraph))
        elif paragraphs and at < len(paragraphs):
            if action == "delete":
                del paragraphs[at]
            else:
                paragraphs[at] = paragraphs[at] + draw(_small_text)
    new = Snapshot(**{**_fields(draw(snapshots())), "paragraphs": tuple(paragraphs)})
    return old, new


def _fields(snapshot: Snapshot) -> dict[str, Any]:
    return {name: getattr(snapshot, name) for name in Snapshot.__slots__}


@settings(max_examples=300)
@given(snapshots(), snapshots())
def test_apply_reproduces_any_new_snapshot(old: Snapshot, new: Snapshot) -> None:
    d = diff(old, new, 3, 4)
    assert apply(old, d) == new
    assert apply(old, json.loads(json.dumps(d))) == new


@settings(max_examples=300)
@given(edited_pairs())
def test_apply_reproduces_edits_after_json_round_trip(pair: tuple[Snapshot, Snapshot]) -> None:
    old, new = pair
    d = json.loads(json.dumps(diff(old, new, 1, 2)))
    assert apply(old, d) == new


@given(edited_pairs())
def test_word_runs_rebuild_both_paragraphs(pair: tuple[Snapshot, Snapshot]) -> None:
    old, new = pair
    for hunk in diff(old, new, 1, 2)["paragraphs"]:
        for pair_ in hunk.get("words", []):
            runs = pair_["runs"]
            assert "".join(r["old"] for r in runs) == old.paragraphs[pair_["old_index"]]
            assert "".join(r["new"] for r in runs) == new.paragraphs[pair_["new_index"]]
            assert all(r["old"] == r["new"] for r in runs if r["op"] == "equal")


@given(snapshots(), snapshots())
def test_headline_word_runs_rebuild_both_headlines(old: Snapshot, new: Snapshot) -> None:
    change = diff(old, new, 1, 2)["fields"].get("title")
    if old.title == new.title:
        assert change is None
        return
    assert change is not None
    runs = change["words"]
    assert "".join(r["old"] for r in runs) == old.title
    assert "".join(r["new"] for r in runs) == new.title
    assert all(r["old"] == r["new"] for r in runs if r["op"] == "equal")
    assert all(r["op"] in {"equal", "insert", "delete", "replace"} for r in runs)


def test_a_headline_edit_marks_only_the_changed_words() -> None:
    old = _story([], title="Ferry crews vote to strike on Friday")
    new = _story([], title="Ferry crews vote to strike on Saturday, union says")
    runs = diff(old, new, 1, 2)["fields"]["title"]["words"]
    changed = [(r["op"], r["old"], r["new"]) for r in runs if r["op"] != "equal"]
    assert changed == [("replace", "Friday", "Saturday, union says")]


def test_apply_ignores_headline_words_it_does_not_need() -> None:
    old = _story(["x"], title="Dam repairs begin")
    new = _story(["x"], title="Dam repairs halted")
    d = json.loads(json.dumps(diff(old, new, 1, 2)))
    assert apply(old, d) == new
    del d["fields"]["title"]["words"]
    assert apply(old, d) == new  # a diff from before headline words still applies


@given(snapshots())
def test_diff_of_identical_snapshots_is_empty(snapshot: Snapshot) -> None:
    d = diff(snapshot, snapshot, 5, 6)
    assert d == {"from_version": 5, "to_version": 6, "fields": {}, "paragraphs": []}
    assert apply(snapshot, d) == snapshot


def _story(paragraphs: list[str], **fields: Any) -> Snapshot:
    base: dict[str, Any] = {
        "id": "s",
        "feed": "f",
        "url": "https://a.example/s",
        "title": "Dam repairs begin",
    }
    return Snapshot(**{**base, **fields}, paragraphs=tuple(paragraphs))


def _long_story(n: int = 2000) -> list[str]:
    return [f"Paragraph {i} reports that crews worked on section {i} of the dam." for i in range(n)]


def test_one_word_edit_in_a_long_story_is_one_small_replace_hunk() -> None:
    paragraphs = _long_story()
    edited = list(paragraphs)
    edited[1234] = edited[1234].replace("crews", "volunteers")
    d = diff(_story(paragraphs), _story(edited), 1, 2)
    assert d["fields"] == {}
    assert d["paragraphs"] == [
        {
            "op": "replace",
            "old_start": 1234,
            "old_end": 1235,
            "new_start": 1234,
            "new_end": 1235,
            "old": [paragraphs[1234]],
            "new": [edited[1234]],
            "words": [
                {
                    "old_index": 1234,
                    "new_index": 1234,
                    "runs": [
                        {
                            "op": "equal",
                            "old": "Paragraph 1234 reports that ",
                            "new": "Paragraph 1234 reports that ",
                        },
                        {"op": "replace", "old": "crews", "new": "volunteers"},
                        {
                            "op": "equal",
                            "old": " worked on section 1234 of the dam.",
                            "new": " worked on section 1234 of the dam.",
                        },
                    ],
                }
            ],
        }
    ]
    assert summarise(d) == "1 paragraph updated"


def test_insert_change_and_delete_in_a_long_story_are_fast_and_minimal() -> None:
    paragraphs = _long_story()
    edited = list(paragraphs)
    edited.insert(1000, "A new paragraph on the weather.")
    edited[500] = edited[500].replace("dam", "weir")
    del edited[1501]
    old, new = _story(paragraphs), _story(edited)
    started = time.perf_counter()
    d = diff(old, new, 1, 2)
    elapsed = time.perf_counter() - started
    assert [(h["op"], len(h["old"]), len(h["new"])) for h in d["paragraphs"]] == [
        ("replace", 1, 1),
        ("insert", 0, 1),
        ("delete", 1, 0),
    ]
    assert apply(old, d) == new
    # Generous bound for slow CI machines; measured at about 2 ms. Catches a quadratic regression.
    assert elapsed < 0.5


def test_fields_report_old_and_new_as_json_values() -> None:
    old = _story(["x"], authors=("Ann",), updated=None)
    new = _story(
        ["x"], title="Dam repairs halted", authors=("Ann", "Bo"), updated="2026-03-02T11:30:00Z"
    )
    d = diff(old, new, 1, 2)
    assert d["fields"] == {
        "title": {
            "old": "Dam repairs begin",
            "new": "Dam repairs halted",
            "words": [
                {"op": "equal", "old": "Dam repairs ", "new": "Dam repairs "},
                {"op": "replace", "old": "begin", "new": "halted"},
            ],
        },
        "authors": {"old": ["Ann"], "new": ["Ann", "Bo"]},
        "updated": {"old": None, "new": "2026-03-02T11:30:00Z"},
    }
    assert d["paragraphs"] == []


def test_unrelated_paragraphs_in_a_replace_hunk_are_not_paired_for_words() -> None:
    old = _story(["keep", "The river rose by a metre overnight.", "keep too"])
    new = _story(["keep", "Schools stay open.", "Buses run late.", "keep too"])
    (hunk,) = diff(old, new, 1, 2)["paragraphs"]
    assert (hunk["op"], hunk["words"]) == ("replace", [])
    assert summarise(diff(old, new, 1, 2)) == "2 paragraphs added; 1 paragraph removed"


def test_a_split_paragraph_pairs_its_first_half() -> None:
    old = _story(["Crews arrived at dawn and the water level fell by noon today."])
    new = _story(["Crews arrived at dawn and the water level fell.", "By noon today."])
    (hunk,) = diff(old, new, 1, 2)["paragraphs"]
    assert [(w["old_index"], w["new_index"]) for w in hunk["words"]] == [(0, 0)]
    assert summarise(diff(old, new, 1, 2)) == "1 paragraph added; 1 paragraph updated"


def _valid_diff() -> tuple[Snapshot, dict[str, Any]]:
    old = _story(["one", "two", "three"])
    new = _story(["one", "2", "three", "four"], title="Dam repairs end")
    return old, diff(old, new, 7, 8)


def test_apply_refuses_a_diff_made_from_another_version() -> None:
    old, d = _valid_diff()
    assert apply(old, d).paragraphs == ("one", "2", "three", "four")
    with pytest.raises(ValueError):
        apply(_story(["one", "TWO", "three"]), d)
    with pytest.raises(ValueError):
        apply(_story(["one", "two", "three"], title="Other headline"), d)
    with pytest.raises(ValueError):
        apply(_story(["one", "two"]), d)


def _break_hunk(d: dict[str, Any], **changes: Any) -> dict[str, Any]:
    broken = copy.deepcopy(d)
    broken["paragraphs"][0].update(changes)
    return broken


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: {**d, "fields": None},
        lambda d: {**d, "paragraphs": "nope"},
        lambda d: {**d, "fields": {"id": {"old": "s", "new": "t"}}},
        lambda d: {**d, "fields": {"title": {"new": "x"}}},
        lambda d: {**d, "fields": {"authors": {"old": [], "new": "Ann"}}},
        lambda d: _break_hunk(d, op="move"),
        lambda d: _break_hunk(d, old_start=-1),
        lambda d: _break_hunk(d, old_end=99),
        lambda d: _break_hunk(d, new_start=0),
        lambda d: _break_hunk(d, new=["2", "extra"]),
        lambda d: {**d, "paragraphs": list(reversed(d["paragraphs"]))},
    ],
)
def test_apply_rejects_malformed_diffs(mangle: Any) -> None:
    old, d = _valid_diff()
    with pytest.raises(ValueError):
        apply(old, mangle(d))


def test_apply_keeps_identity_fields_of_the_old_snapshot() -> None:
    old, d = _valid_diff()
    new = apply(old, d)
    assert (new.id, new.feed, new.guid) == (old.id, old.feed, old.guid)


@pytest.mark.parametrize(
    ("old", "new", "text"),
    [
        (
            _story(["a"]),
            _story(["a", "b", "c"], title="Dam breached"),
            "Headline changed; 2 paragraphs added",
        ),
        (_story(["a", "b"]), _story(["a"]), "1 paragraph removed"),
        (_story(["a"], summary="s"), _story(["a"], summary="t"), "Summary changed"),
        (_story(["a"]), _story(["a"], updated="2026-03-02T11:30:00Z"), "Update time changed"),
        (_story(["a"]), _story(["a"]), "No visible change"),
    ],
)
def test_summarise(old: Snapshot, new: Snapshot, text: str) -> None:
    assert summarise(diff(old, new, 1, 2)) == text
    assert summarise(json.loads(json.dumps(diff(old, new, 1, 2)))) == text


def test_summarise_created_uses_headline_else_opening_words() -> None:
    assert summarise_created(_story(["body"])) == "Dam repairs begin"
    untitled = _story(["word " * 60], title="")
    text = summarise_created(untitled)
    assert text.startswith("word word") and text.endswith("…") and len(text) <= 120
    assert summarise_created(_story([], title="", url="")) == "New story"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["Advertisement"] * 2000, ["Advertisement", "Live: crews at the dam."] * 1000),
        (["a", "b", "c", "d"] * 500, ["d", "c", "b", "a"] * 500),
    ],
)
def test_repetitive_stories_diff_quickly_and_correctly(old: list[str], new: list[str]) -> None:
    # Without a bound, difflib takes minutes on such input (one poll would stall the poller).
    started = time.perf_counter()
    d = diff(_story(old), _story(new), 1, 2)
    assert time.perf_counter() - started < 2
    assert apply(_story(old), d) == _story(new)
