"""
Django's PostgreSQL backend, with a cheaper health check.

``CONN_HEALTH_CHECKS`` keeps connections across requests (``CONN_MAX_AGE``) safe after the
database restarts: before a request's first query Django asks ``is_usable()``, and the stock
answer is a ``SELECT 1`` round trip. The web server makes such a check before every short
transaction of its own (each terminal connect makes four: the session and user, the attempt
and lease, the recording's row and its close), so half of a connect's queries were these.

An idle connection (autocommit, no transaction open) has nothing to read unless the server
has said something: when PostgreSQL ends a backend (a restart, ``pg_terminate_backend``, an
idle timeout) it sends its last error and closes the socket. So: nothing to read means usable,
with no query; anything to read (or a connection in any other state) falls back to the stock
``SELECT 1``, which also drains a harmless notice. A connection recovering from an error
(``errors_occurred``) always gets the real query.
"""
from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        if not self.errors_occurred and conn.info.transaction_status == TransactionStatus.IDLE:
            try:
                poller = select.poll()  # not select(): the web process has far more than 1024 fds
                poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
                if not poller.poll(0):
                    return True
            except (OSError, ValueError):
                return False
        return super().is_usable()
