"""``LazyList``: a state's history (or event list) that loads its older items on demand.

A step reads an instance's head, which holds only the length and the last few items of
each list. The lists of the state a step works on, and returns, are ``LazyList`` s:
reading the tail, appending and ``len`` cost nothing; the first access to an older item
loads the whole list once from the log (the store replays it). The list remembers the
stored form of every item it handed out, so after a step ``change()`` reports exactly
the items that changed and those appended, without comparing the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableSequence
from typing import Any, Generic, TypeVar, overload

from chatflow._validation import same_json

T = TypeVar("T")


class LazyList(MutableSequence[T], Generic[T]):
    """A list of ``T`` whose older items are parsed from stored dicts when first read."""

    def __init__(
        self,
        length: int,
        tail: list[dict[str, Any]],
        parse: Callable[[Any], T],
        dump: Callable[[T], dict[str, Any]],
        load: Callable[[], list[Any]],
    ) -> None:
        self._stored_len = length
        self._tail, self._tail_start = tail, length - len(tail)
        self._all: list[Any] | None = None
        self._items: dict[int, T] = {}
        self._added: list[T] = []
        self._parse, self._dump, self._load = parse, dump, load
        self._full: list[T] | None = None  # set once edited other than by append

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        if self._full is not None:
            return len(self._full)
        return self._stored_len + len(self._added)

    def _stored_item(self, index: int) -> Any:
        if index >= self._tail_start:
            return self._tail[index - self._tail_start]
        if self._all is None:
            self._all = list(self._load())
        return self._all[index]

    def _get(self, index: int) -> T:
        if self._full is not None:
            return self._full[index]
        if index >= self._stored_len:
            return self._added[index - self._stored_len]
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = self._parse(self._stored_item(index))
        return item

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(len(self)))]
        size = len(self)
        if not -size <= index < size:
            raise IndexError("list index out of range")
        return self._get(index % size)

    def __iter__(self) -> Iterator[T]:
        for index in range(len(self)):
            yield self._get(index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, LazyList)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        return repr(list(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> list[T]:
        import copy  # noqa: PLC0415

        return copy.deepcopy(list(self), memo)

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    # -- changing ----------------------------------------------------------------------

    def append(self, value: T) -> None:
        if self._full is not None:
            self._full.append(value)
        else:
            self._added.append(value)

    def _materialize(self) -> list[T]:
        if self._full is None:
            self._full = [self._get(i) for i in range(len(self))]
        return self._full

    @overload
    def __setitem__(self, index: int, value: T) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[T]) -> None: ...
    def __setitem__(self, index: int | slice, value: Any) -> None:
        self._materialize()[index] = value

    def __delitem__(self, index: int | slice) -> None:
        del self._materialize()[index]

    def insert(self, index: int, value: T) -> None:
        self._materialize().insert(index, value)

    def change(self) -> dict[str, Any]:
        """How the list differs from its stored form (the ``lists`` entry of an event)."""
        if self._full is not None:
            old = [self._stored_item(i) for i in range(self._stored_len)]
            new = [self._dump(item) for item in self._full]
            put = {
                str(i): new[i]
                for i in range(min(len(old), len(new)))
                if not same_json(new[i], old[i])
            }
            change: dict[str, Any] = {"put": put} if put else {}
            if len(new) != len(old):
                shared = min(len(old), len(new))
                change.update({"from": shared, "items": new[shared:]})
            return change
        put = {}
        for index, item in self._items.items():
            dumped = self._dump(item)
            if not same_json(dumped, self._stored_item(index)):
                put[str(index)] = dumped
        change = {"put": put} if put else {}
        if self._added:
            change.update({"from": self._stored_len, "items": [self._dump(i) for i in self._added]})
        return change
