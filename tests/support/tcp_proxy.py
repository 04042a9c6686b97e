"""A loopback TCP proxy in front of one upstream, so a test can make the network fail on cue: `sever()` cuts every
open connection, `refusing` turns new ones away (accepted, then closed at once), `stall()` keeps the current
connections open but stops forwarding on them, as a partition or a hung middlebox would. It speaks no protocol.
"""

from __future__ import annotations

import asyncio
import contextlib


class _Link:
    """One client connection and its upstream connection; `flowing` is cleared when the link is stalled."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (client, upstream)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.pipes: list[asyncio.Task] = []

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        for pipe in self.pipes:  # a stalled pipe waits on `flowing`, not on its socket: it must be told to stop
            pipe.cancel()


class TcpProxy:
    """`async with TcpProxy(port) as proxy:` listens on a free loopback port (`proxy.port`) and forwards each
    connection to 127.0.0.1:`port`. `accepted` counts connections that reached the upstream."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.refusing = False
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task] = set()

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._server.close()
        self.sever()
        await self._server.wait_closed()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def sever(self) -> int:
        """Abort every open connection (both sides, without a goodbye); returns how many there were."""
        links = list(self._links)
        for link in links:
            link.cut()
        return len(links)

    def stall(self) -> int:
        """Stop forwarding on every open connection, leaving the sockets open; returns how many there were.
        Connections made afterwards flow normally."""
        for link in self._links:
            link.flowing.clear()
        return len(self._links)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())
        try:
            if self.refusing:
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.transport.abort()
                return
            self.accepted += 1
            link = _Link(writer, up_writer)
            self._links.add(link)
            link.pipes = [asyncio.create_task(self._pipe(reader, up_writer, link)),
                          asyncio.create_task(self._pipe(up_reader, writer, link))]
            try:
                await asyncio.wait(link.pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:  # one direction ended: the connection is over in both
                self._links.discard(link)
                link.cut()
                await asyncio.gather(*link.pipes, return_exceptions=True)
        finally:
            self._handlers.discard(asyncio.current_task())

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                await link.flowing.wait()
                sink.write(data)
                await sink.drain()
