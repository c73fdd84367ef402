"""A bandwidth-limited TCP relay in front of the loopback registry: pulls through it are bound by
the network, as they are from a real registry, which is what concurrent pulls are for.
Each connection's downstream is limited to RATE bytes/s."""

from __future__ import annotations

import asyncio
import threading
import time

CHUNK = 16384


class Throttle:
    def __init__(self, upstream_port: int, rate: int) -> None:
        self.upstream_port, self.rate = upstream_port, rate
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer, None), self._pipe(up_reader, writer, self.rate))

    async def _pipe(self, reader, writer, rate: int | None) -> None:
        began, sent = time.monotonic(), 0
        try:
            while chunk := await reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
                if rate:
                    sent += len(chunk)
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
