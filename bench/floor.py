"""The floor: a plain asyncio websocket server that broadcasts in process.

No Lambda, no DynamoDB, no HTTP hop: a frame in, one JSON frame out to every
connection. Nothing built on API Gateway can beat it; the benchmark reports our
distance to it. Run as `python -m bench.floor PORT_FILE`; it writes its port there.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from websockets.asyncio.server import ServerConnection, broadcast, serve


async def main(port_file: Path) -> None:
    members: set[ServerConnection] = set()

    async def chat(connection: ServerConnection) -> None:
        members.add(connection)
        try:
            async for raw in connection:
                data = json.loads(raw).get("data", "") if raw.startswith("{") else raw
                broadcast(members, json.dumps({"type": "message", "text": data}))
        finally:
            members.discard(connection)

    async with serve(chat, "127.0.0.1", 0, max_queue=None) as server:
        port = server.sockets[0].getsockname()[1]
        port_file.write_text(str(port))
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
