"""Who moderates a room, and who is kept out of it: owners, moderators and bans, stored.

Items beside a room's terms (chalicelib/store/memberships.py), in its partition:

| item        | pk          | sk           | attributes      |
| ----------- | ----------- | ------------ | --------------- |
| public owner| ROOM#{room} | OWNER        | user, at        |
| a role      | ROOM#{room} | ROLE#{user}  | role, by, at    |
| a ban       | ROOM#{room} | BAN#{user}   | by, at          |

A private room's owner is its META `owner`; a public room's is whoever
`create`d it while it had no owner and no members (OWNER, claimed with a
conditional put): rooms that came to be by a `join`, and the default room,
have none. The owner names moderators (ROLE items). Members of the Cognito
group ADMIN_GROUP (the token's `cognito:groups`, read at $connect) moderate
every room (chalicelib/moderation.py has the rules).

Request counts: a rank is one BatchGetItem (META, OWNER and the ROLE item);
an admin costs none. `joined` tells a signed-in non-admin their rank (one; none
in a DM). A ban check is one GetItem, made when a signed-in person
connects into a room, joins a new one, or is invited.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.store.memberships import META_SK, ROOM_PREFIX
from chalicelib.store.table import ConditionFailed, Item, Table

ADMIN_GROUP = "admins"
OWNER_SK = "OWNER"
ROLE_PREFIX = "ROLE#"
BAN_PREFIX = "BAN#"
OWNER, MODERATOR, MEMBER = "owner", "moderator", "member"


def _key(room: str, sk: str) -> Item:
    return {"pk": {"S": ROOM_PREFIX + room}, "sk": {"S": sk}}


class Roles:
    """A room's owner, moderators and bans."""

    def __init__(self, table: Table, clock: Callable[[], float]) -> None:
        self._table = table
        self._clock = clock

    def rank(self, room: str, user: str) -> str:
        """`owner`, `moderator` or "" (a guest, or a member): one BatchGetItem."""
        if not user:
            return ""
        keys = [_key(room, META_SK), _key(room, OWNER_SK), _key(room, ROLE_PREFIX + user)]
        items = self._table.batch_get(keys, ConsistentRead=True)
        by_sk = {item["sk"]["S"]: item for item in items}
        owner = by_sk.get(META_SK, by_sk.get(OWNER_SK, {}))
        if owner.get("owner", owner.get("user", {})).get("S") == user:
            return OWNER
        role = by_sk.get(ROLE_PREFIX + user, {}).get("role", {}).get("S", "")
        return MODERATOR if role == MODERATOR else ""

    def claim_owner(self, room: str, user: str) -> bool:
        """Make `user` the owner of a public room that has none; False if it has one."""
        try:
            self._table.put(
                {**_key(room, OWNER_SK), "user": {"S": user}, "at": self._now()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ConditionFailed:
            return False
        return True

    def set_role(self, room: str, user: str, role: str, by: str) -> None:
        """`moderator`, or `member` (no role item)."""
        if role == MODERATOR:
            self._table.put(
                {
                    **_key(room, ROLE_PREFIX + user),
                    "role": {"S": role},
                    "by": {"S": by},
                    "at": self._now(),
                }
            )
        else:
            self._table.delete(_key(room, ROLE_PREFIX + user))

    def banned(self, room: str, user: str) -> bool:
        return self._table.get(_key(room, BAN_PREFIX + user), ConsistentRead=True) is not None

    def ban(self, room: str, user: str, by: str) -> bool:
        """Ban `user` from `room`; False if they were banned already."""
        try:
            self._table.put(
                {**_key(room, BAN_PREFIX + user), "by": {"S": by}, "at": self._now()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ConditionFailed:
            return False
        return True

    def unban(self, room: str, user: str) -> None:
        self._table.delete(_key(room, BAN_PREFIX + user))

    def _now(self) -> dict[str, str]:
        return {"N": str(int(self._clock() * 1000))}
