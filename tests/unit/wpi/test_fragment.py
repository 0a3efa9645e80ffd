"""Splitting the phone's item lists into fragments (spec §5, fragment.py's rules)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from provd.wpi.codec import emit_workpoint, envelope_size, item_size
from provd.wpi.fragment import DEFAULT_MAX_MESSAGE, group_by_name, split_items
from provd.wpi.model import Fragment, Item, Reason, ReplyStatus, WorkpointMessage

TEMPLATE = WorkpointMessage(
    nonce="B0151B36FE9CEEA0F667FF3A208AC994",
    reason=Reason.REPLY_TO,
    items=(),
    action="ReadAllItems",
    status=ReplyStatus.ACCEPTED,
    fragment=Fragment.FINAL,
)
ENVELOPE = envelope_size(TEMPLATE)


def _document(items: tuple[Item, ...], fragment: Fragment) -> bytes:
    return emit_workpoint(
        WorkpointMessage(
            nonce=TEMPLATE.nonce,
            reason=TEMPLATE.reason,
            items=items,
            action=TEMPLATE.action,
            status=TEMPLATE.status,
            fragment=fragment,
        )
    )


def _budget(limit: int) -> int:
    return limit - ENVELOPE


def test_the_default_limit_is_the_guides_50_kb() -> None:
    assert DEFAULT_MAX_MESSAGE == 50_000


def test_a_list_that_fits_is_one_fragment() -> None:
    items = [Item(name="a", value="1"), Item(name="b", value="2", index=1)]
    assert split_items(TEMPLATE, items) == [tuple(items)]


def test_an_empty_list_is_one_empty_fragment() -> None:
    assert split_items(TEMPLATE, []) == [()]


def test_an_indexed_group_is_never_split_when_it_fits() -> None:
    a = [Item(name="a", value="x" * 40, index=i) for i in range(3)]
    b = [Item(name="b", value="y" * 40, index=i) for i in range(3)]
    limit = ENVELOPE + sum(map(item_size, a)) + item_size(b[0])  # a, and room for one of b
    assert split_items(TEMPLATE, a + b, limit) == [tuple(a), tuple(b)]


def test_a_single_oversized_item_goes_alone_in_its_fragment() -> None:
    small = Item(name="a", value="1")
    big = Item(name="b", value="z" * 500)
    after = Item(name="c", value="2")
    limit = ENVELOPE + 100
    assert split_items(TEMPLATE, [small, big, after], limit) == [(small,), (big,), (after,)]


def test_a_group_too_big_for_any_fragment_is_split_at_item_boundaries_from_a_fresh_one() -> None:
    before = Item(name="a", value="1")
    group = [Item(name="g", value="v" * 30, index=i) for i in range(6)]
    limit = ENVELOPE + 2 * item_size(group[0]) + 5
    fragments = split_items(TEMPLATE, [before, *group], limit)
    assert fragments == [(before,), tuple(group[0:2]), tuple(group[2:4]), tuple(group[4:6])]


def test_items_of_one_name_are_gathered_in_order_of_first_appearance() -> None:
    a1, b, a2 = Item(name="a", value="1"), Item(name="b", value="2"), Item(name="a", value="3")
    assert group_by_name([a1, b, a2]) == [[a1, a2], [b]]
    assert split_items(TEMPLATE, [a1, b, a2]) == [(a1, a2, b)]


_NAMES = st.sampled_from([f"item-{n}" for n in range(12)])
_VALUES = st.text(st.sampled_from("ab<&\u00e4\u20ac"), max_size=120)


@st.composite
def _grouped_items(draw: st.DrawFn) -> list[Item]:
    """Item lists as a book answers them: each name's items together."""
    names = draw(st.lists(_NAMES, unique=True, max_size=10))
    items: list[Item] = []
    for name in names:
        if draw(st.booleans()):
            items.append(Item(name=name, value=draw(_VALUES)))
        else:
            count = draw(st.integers(1, 8))
            items.extend(Item(name=name, value=draw(_VALUES), index=i) for i in range(count))
    return items


@given(items=_grouped_items(), extra=st.integers(min_value=0, max_value=3000))
def test_fragments_respect_the_limit_and_keep_groups_whole(items: list[Item], extra: int) -> None:
    limit = ENVELOPE + extra
    fragments = split_items(TEMPLATE, items, limit)
    # Concatenated, the fragments are the original list: nothing lost, duplicated, reordered.
    assert [item for fragment in fragments for item in fragment] == items
    assert all(fragments) or fragments == [()]
    for number, fragment in enumerate(fragments):
        flag = Fragment.FINAL if number == len(fragments) - 1 else Fragment.NEXT
        size = len(_document(fragment, flag))
        # Within the limit, unless the fragment is one item too big for any fragment.
        if size > limit:
            assert len(fragment) == 1
            assert item_size(fragment[0]) > _budget(limit)
    # Every group that fits in a fragment is in exactly one fragment.
    home: dict[str, set[int]] = {}
    for number, fragment in enumerate(fragments):
        for item in fragment:
            home.setdefault(item.name, set()).add(number)
    for group in group_by_name(items):
        if sum(map(item_size, group)) <= _budget(limit):
            assert len(home[group[0].name]) == 1


@given(items=st.lists(st.builds(Item, name=_NAMES, value=_VALUES), max_size=30))
def test_fragments_concatenate_to_the_items_grouped_by_name(items: list[Item]) -> None:
    fragments = split_items(TEMPLATE, items, ENVELOPE + 400)
    flat = [item for fragment in fragments for item in fragment]
    assert flat == [item for group in group_by_name(items) for item in group]
