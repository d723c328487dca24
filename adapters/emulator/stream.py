"""A streaming HTTP response that notices client disconnects at once and can drop the socket.

Starlette's ``StreamingResponse`` cannot abort the TCP connection mid-body, which is the fault a
"socket drop mid-stream" needs; this one can (yield ``DROP``), and reports a client disconnect
through a callback so tests can see that cancellation closed the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response

from vani.adapters.emulator.faults import abort_transport

DROP = b"__drop__"


class LiveStream(Response):
    def __init__(
        self,
        body: AsyncIterator[bytes],
        media_type: str,
        headers: dict[str, str] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(None, status_code=200, headers=headers, media_type=media_type)
        # Response.__init__ sets "content-length: 0" for a None body; this body is chunked.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.body_iter = body
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def pump() -> None:
            async for chunk in self.body_iter:
                if chunk is DROP:
                    abort_transport(receive)
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        watcher, pumper = asyncio.create_task(watch()), asyncio.create_task(pump())
        try:
            done, _ = await asyncio.wait({watcher, pumper}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and not pumper.done():
                pumper.cancel()
                if self.on_disconnect:
                    self.on_disconnect()
        finally:
            for t in (watcher, pumper):
                t.cancel()
            for t in (watcher, pumper):
                with contextlib.suppress(asyncio.CancelledError):
                    await t  # a bug in the body generator surfaces here, not silently
