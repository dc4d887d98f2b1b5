"""The chat's state in one DynamoDB table, one module per aggregate.

One table (defined once, in .chalice/resources.json), keys `pk` and `sk`;
each module holds the items of one aggregate, their design table and what
each operation costs:

| module         | items                                                        |
| -------------- | ------------------------------------------------------------ |
| connections.py | CONN#{id} / CONNECTION: a connection, its rooms, its limits  |
| rooms.py       | ROOM#{room} / MEMBER#{id}, ROOMS / {room}: subscriptions     |
| claims.py      | ROOM#{room} / NICK#{key}, IP#{ip} / SLOT#{n}: names, slots   |
| memberships.py | USER#{user} / ROOM#, CONN#, SEEN; ROOM#{room} / META: a      |
|                | person's rooms, tabs and sign-in marker; private room terms  |
| roles.py       | ROOM#{room} / OWNER, ROLE#{user}, BAN#{user}                 |
| messages.py    | HIST#{room} / {ulid}: history, edits, reactions              |

Only table.py calls DynamoDB; it turns botocore's errors into the chat's own
(`ConditionFailed` for the store, `chalicelib.outage.Unavailable` for all).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalicelib.settings import Settings
from chalicelib.store.claims import Claims
from chalicelib.store.connections import Connections
from chalicelib.store.lifetime import Lifetime
from chalicelib.store.memberships import Memberships
from chalicelib.store.messages import Messages
from chalicelib.store.roles import Roles
from chalicelib.store.rooms import Rooms
from chalicelib.store.table import Table


class Store:
    """Every aggregate over one table, through one low-level boto3 client."""

    def __init__(
        self, client: Any, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        table = Table(client, settings.table_name)
        self._lifetime = Lifetime(settings, clock)
        self.claims = Claims(table, settings, self._lifetime)
        self.rooms = Rooms(table, settings, self._lifetime)
        self.connections = Connections(table, self._lifetime, self.rooms, self.claims)
        self.memberships = Memberships(table, clock)
        self.roles = Roles(table, clock)
        self.messages = Messages(table, settings, self._lifetime)

    def now_ms(self) -> int:
        return self._lifetime.now_ms()
