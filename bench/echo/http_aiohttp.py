"""An aiohttp application (one GET route answering a short text, no access
log) served by aiohttp's AppRunner on the loop the flags choose, as
http_protocol.py: --uvloop, --py-io-uring [--uring-transport], or asyncio's.
Prints PORT and exits on stdin EOF (common.py)."""

import asyncio
import sys

import common
import http_protocol
from aiohttp import web

BODY = "Hello, World!\n"


async def hello(request):
    return web.Response(text=BODY)


async def serve(sock):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    common.ready(sock)
    try:
        await asyncio.Event().wait()          # until the process exits
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    http_protocol.run(lambda: serve(common.listener()), sys.argv[1:])
