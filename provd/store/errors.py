"""The store's one error type.

Every `sqlite3.Error` and `OSError` raised while touching flash is translated
into `StoreError` at the border of `provd.store`, so callers above (the
`ItemBook`, the service) handle one type and answer the server `failed`
(spec §3.3: storage failed, nothing of the message committed). Messages name
what failed and why, never an item value.
"""

from __future__ import annotations


class StoreError(Exception):
    """Storage failed; the operation that raised it changed nothing durable."""
