"""Supervision: a database connection and an API that depends on it, under one RestForOne supervisor.

When the database actor fails, RestForOne restarts it and every sibling started after it (the API), so the API
never keeps a stale connection. The restarted actors keep their refs and their mailboxes: callers notice nothing
but a short delay, and only the message that failed is lost.

Run it with ``python -m examples.supervision``.
"""

from __future__ import annotations

from typing import Any

import trio

from actors import Actor, ActorFailed, ActorSystem, Backoff, ChildSpec, RestForOne, Supervisor


class Database(Actor):
    """Pretends to hold a connection; ``"drop"`` breaks it (an exception: the actor fails)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("database: connected")

    async def receive(self, message: Any) -> Any:
        if message == "drop":
            raise ConnectionResetError("the database connection dropped")
        return f"row for {message!r}"


class Api(Actor):
    """Answers requests by asking the database; started after it, so RestForOne restarts it with it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("api: ready")

    async def receive(self, request: Any) -> Any:
        database = self.system.lookup("app/database")
        assert database is not None
        return await database.ask(request)


async def main() -> list[str]:
    log: list[str] = []
    async with ActorSystem() as system:
        strategy = RestForOne(max_restarts=3, within=10.0, backoff=Backoff(0.1, 1.0))
        await system.spawn(Supervisor, [ChildSpec(Database, log, name="database"), ChildSpec(Api, log, name="api")],
                           name="app", supervision=strategy)
        api, database = system.lookup("app/api"), system.lookup("app/database")
        assert api is not None
        assert database is not None
        print(await api.ask("user 1"))
        try:
            await database.ask("drop")
        except ActorFailed as failure:
            print(f"the database failed: {failure.cause!r}")
        print(await api.ask("user 2"))  # waits in the mailbox while both restart, then is answered
        assert system.lookup("app/api") is api  # same refs after the restart
        print("restarts:", {path: s.restarts for path, s in system.statistics().actors.items()})
    print("\n".join(log))
    return log


if __name__ == "__main__":
    trio.run(main)
