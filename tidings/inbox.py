"""The message center's inbox: what a user sees per source, and changes to their read state.

Reachable from every protocol and the server API alike: sessions and API handlers call
these methods with a user id they have already authorized. Every change is one store
transaction that returns the exact counts after it; those counts then go, as an `inbox`
push, to every other connection of the user on every node, so two tabs and a phone agree.
This module never decides who may read whose inbox: its callers do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tidings.errors import ErrorCode, TidingsError
from tidings.readstate import NoSuchMessage, ReadChange
from tidings.store.base import Store, StoreError

MAX_PAGE = 100
DEFAULT_PAGE = 10

# (user, push kind, body, connection to leave out) -> delivered on every node holding the user
PushToUser = Callable[[str, str, dict, str | None], Awaitable[None]]


class Inbox:
    def __init__(self, store: Store, push: PushToUser):
        self.store = store
        self.push = push

    async def view(self, user: str, *, limit: int = DEFAULT_PAGE) -> dict:
        """Counts per source and overall, with each source's `limit` newest messages."""
        try:
            view = await self.store.inbox_view(user, limit=limit)
        except StoreError as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"inbox failed: {exc}") from None
        return view.to_dict()

    async def page(self, user: str, source: str, *, before: int | None,
                   limit: int = DEFAULT_PAGE) -> dict:
        """One source's messages older than offset `before` (or the newest), newest first."""
        try:
            counts, messages = await self.store.inbox_page(user, source, before=before,
                                                           limit=limit)
        except StoreError as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"inbox failed: {exc}") from None
        own = counts.sources.get(source)
        return {"source": source, **(own.to_dict() if own else
                                     {"total": 0, "unread": 0, "unseen": 0}),
                "version": counts.version,
                "messages": [m.to_dict() for m in messages]}

    async def change(self, user: str, change: ReadChange, *,
                     origin: str | None = None) -> dict:
        """Apply `change`; the counts after it, also pushed to the user's other connections.

        `origin` is the connection that asked (it has the reply, so no push); None from the
        server API, so every connection of the user hears about it.
        """
        try:
            changed, counts = await self.store.inbox_change(user, change)
        except NoSuchMessage:
            raise TidingsError(ErrorCode.NOT_IN_INBOX,
                               f"no inbox message at offset {change.offset}") from None
        except StoreError as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"{change.kind} failed: {exc}") from None
        body = counts.to_dict()
        await self.push(user, "inbox", body, origin)
        return {**body, "changed": changed}
