"""Observes a CoAP resource with the aiocoap library and prints each notification's payload,
one per line, until COUNT notifications arrived or SECONDS passed.

aiocoap-client --observe is not used: in aiocoap 0.4.17 its request path cancels the
observation as soon as the first response arrives (the `finally` clause after awaiting
`requester.response` in aiocoap/cli/client.py), so it never shows a notification.

    python aiocoap_observe.py URI COUNT SECONDS
"""

import asyncio
import sys

from aiocoap import GET, Context, Message


async def observe(uri: str, count: int) -> None:
    context = await Context.create_client_context()
    request = context.request(Message(code=GET, uri=uri, observe=0))
    first = await request.response
    print(f"registered {first.code}", flush=True)
    seen = 0
    async for notification in request.observation:
        print(notification.payload.decode("utf-8", "replace"), flush=True)
        seen += 1
        if seen >= count:
            break
    await context.shutdown()


def main() -> None:
    uri, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    asyncio.run(asyncio.wait_for(observe(uri, count), seconds))


if __name__ == "__main__":
    main()
