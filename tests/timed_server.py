"""A tiny HTTP/1.1 server with a known service time, run in its own process for the bench tests
(so that the measuring process's work cannot delay it). Prints its port, then serves.

    python tests/timed_server.py --service-ms 20 [--stall-at-s 4 --stall-s 1] [--serial]

GET /work waits the service time (measured from when the request line arrived); during the
stall window (counted from the first /work) requests wait until the stall ends. --serial serves
one /work at a time. GET /count answers how many /work requests it answered ({"work": N}); GET
/healthz and anything else answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import time

BODY = b'{"ok": true}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--stall-at-s", type=float, default=None)
    parser.add_argument("--stall-s", type=float, default=1.0)
    parser.add_argument("--serial", action="store_true")
    options = parser.parse_args()
    service_s = options.service_ms / 1000.0
    first: list[float] = []
    answered = [0]
    serial = asyncio.Lock()

    async def work(received: float) -> None:
        if not first:
            first.append(received)
        if options.stall_at_s is not None:
            stall_start = first[0] + options.stall_at_s
            if stall_start <= received < stall_start + options.stall_s:
                await asyncio.sleep(stall_start + options.stall_s - received)
        # The event loop's timers are good to about a millisecond: sleep short, then spin to the
        # exact service time (a test fixture can spend that CPU).
        remaining = service_s - (time.perf_counter() - received)
        if remaining > 0.002:
            await asyncio.sleep(remaining - 0.0015)
        while time.perf_counter() - received < service_s:
            pass

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                received = time.perf_counter()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                path = request_line.split(b" ")[1]
                if path.startswith(b"/work"):
                    if options.serial:
                        async with serial:
                            await work(time.perf_counter())
                    else:
                        await work(received)
                    answered[0] += 1
                if path == b"/count":
                    body = b'{"work": %d}' % answered[0]
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
                    )
                else:
                    writer.write(RESPONSE)
                await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
