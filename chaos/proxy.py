"""`FaultProxy`: a loopback TCP proxy between one taskyard process and its backend server,
whose network the harness cuts, slows and black-holes.

Modes: `pass` forwards; `delay` holds every chunk `delay` seconds before forwarding it (both
directions, order kept); `blackhole` keeps the connections open but forwards nothing until
healed (like a partition: the client sees timeouts, not errors); `cut` resets every open
connection (RST) and every new one until healed (the client sees errors at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ("MODES", "FaultProxy")

MODES = ("pass", "delay", "blackhole", "cut")
_CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), not FIN: the peer sees a reset connection."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Listens on 127.0.0.1:`port` (chosen at `start`) and forwards to `target`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._healed = asyncio.Event()
        self._healed.set()

    async def start(self) -> int:
        """Start listening; returns the port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        """Switch to `mode` (`delay` in seconds for mode `delay`); `cut` resets live links."""
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; choose from {', '.join(MODES)}")
        self.mode, self.delay = mode, delay
        if mode in ("blackhole", "cut"):
            self._healed.clear()
        else:
            self._healed.set()
        if mode == "cut":
            for client, upstream in list(self._links):
                _reset(client)
                _reset(upstream)
            self._links.clear()

    async def close(self) -> None:
        """Stop listening and drop every link."""
        if self._server is not None:
            self._server.close()
            for client, upstream in list(self._links):
                client.transport.abort()
                upstream.transport.abort()
            self._links.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._links.discard(link)
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if self.mode == "blackhole":
                    await self._healed.wait()  # held, like packets retransmitted after the heal
                if self.mode == "cut":
                    break
                if self.mode == "delay" and self.delay > 0:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
