"""Async tests on a thread of their own.

Once a browser test has run, Playwright's sync API keeps an event loop running on the main
thread, and pytest-asyncio can no longer start one there: an async test that happens to run
after a browser test would fail for that reason alone. ``async_test`` runs the coroutine with
``asyncio.run`` on a fresh thread instead, whatever ran before it.

    @pytest.mark.django_db(transaction=True)
    @async_test
    async def test_something():
        ...
"""
from __future__ import annotations

import asyncio
import functools
import threading


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        outcome: dict = {}

        def run():
            from django.db import connections

            try:
                outcome["result"] = asyncio.run(fn(*args, **kwargs))
            except BaseException as exc:  # re-raised on the test's thread
                outcome["error"] = exc
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, name=f"async-test-{fn.__name__}")
        thread.start()
        thread.join(600)
        if thread.is_alive():
            raise TimeoutError(f"{fn.__name__} did not finish within 600 s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    return wrapper
