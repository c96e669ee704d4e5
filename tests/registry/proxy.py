"""A TCP proxy that counts (and can throttle) the bytes a server sends back to its clients.

Put in front of a registry, it tells how many bytes a pull really fetched. It runs its own
asyncio loop in a thread; ``rate`` (bytes per second, shared by all connections, 0 = unlimited)
can be changed while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class CountingProxy:
    def __init__(self, upstream_host: str, upstream_port: int, rate: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rate = rate
        self.served = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._next = 0.0
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.get_running_loop().call_soon(self._loop.stop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _throttle(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._next = max(self._next, now) + n / self.rate
        await asyncio.sleep(self._next - now)

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection(*self.upstream)
        except OSError:
            cwriter.close()
            return

        async def up() -> None:
            while data := await creader.read(1 << 16):
                uwriter.write(data)
                await uwriter.drain()

        async def down() -> None:
            while data := await ureader.read(1 << 14):
                await self._throttle(len(data))
                cwriter.write(data)
                await cwriter.drain()
                self.served += len(data)

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (cwriter, uwriter):
            with contextlib.suppress(Exception):
                writer.close()
