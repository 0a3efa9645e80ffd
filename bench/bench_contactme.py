"""Contact-me requests answered per second on loopback (issue 4 "Done when": aim over 2,000).

The listener runs in its own `selectors` loop in a thread, as it does in the daemon;
client threads (or, with ``--processes``, client processes, so the clients do not share
the listener's interpreter lock) send N real HTTP POSTs of ``ContactMe=true``, one
connection each, the way a provisioning server sends them. Every answer must be 204;
the figure is answers per second of wall time, plus the listener's own counters.

Usage: bench_contactme.py [--requests N] [--clients C] [--processes]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import selectors
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provd.transport.contactme import ContactMeListener, ContactMeRequest
from provd.wpi.contactme import CONTACT_PATH

HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def client(port: int, count: int) -> int:
    """Send `count` contact-me requests, one connection each; return how many got 204."""
    ok = 0
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", CONTACT_PATH, b"ContactMe=true", HEADERS)
            response = connection.getresponse()
            response.read()
            ok += response.status == 204
        finally:
            connection.close()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--processes", action="store_true", help="clients in processes")
    args = parser.parse_args()

    selector = selectors.DefaultSelector()
    contacts: list[ContactMeRequest] = []
    listener = ContactMeListener(selector, contacts.append, host="127.0.0.1", port=0)
    port = listener.address[1]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for key, mask in selector.select(0.05):
                key.data(mask)
            listener.tick()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    per_client = [args.requests // args.clients] * args.clients
    per_client[0] += args.requests - sum(per_client)
    start = time.perf_counter()
    if args.processes:
        with multiprocessing.get_context("fork").Pool(args.clients) as pool:
            answered = sum(pool.starmap(client, [(port, n) for n in per_client]))
    else:
        with ThreadPoolExecutor(args.clients) as threads:
            answered = sum(threads.map(client, [port] * args.clients, per_client))
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join(5)
    stats = listener.stats
    still_open = listener.open_connections
    listener.close()
    selector.close()

    kind = "processes" if args.processes else "threads"
    print(f"requests: {args.requests} from {args.clients} client {kind}, one connection each")
    print(
        f"answered 204: {answered} (listener: {stats.answers} answers, {stats.contacts} contacts)"
    )
    print(f"evicted: {stats.evicted}, timed out: {stats.timed_out}, open at end: {still_open}")
    print(f"contact-me answered per second: {answered / elapsed:,.0f} (target > 2,000)")
    if answered != args.requests:
        sys.exit("not every request got 204")


if __name__ == "__main__":
    main()
