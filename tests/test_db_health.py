"""The database connection's health check (baseliner/postgres): a connection the server has
closed is never used, and a healthy idle one is vouched for without a query."""
import time

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db(transaction=True)


def _fresh():
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    return wrapper


def _last_query(observer, pid: int) -> str | None:
    with observer.cursor() as cur:
        cur.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cur.fetchone()
    return row[0] if row else None


def test_the_project_uses_the_health_check_backend():
    assert type(connections["default"]).__module__ == "baseliner.postgres.base"
    assert connections["default"].settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_healthy_idle_connection_is_usable_without_a_query():
    conn, observer = _fresh(), _fresh()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 'the last query before the check'")
        pid = conn.connection.info.backend_pid
        assert conn.is_usable()
        # what the server last ran for that connection is still ours: no SELECT 1 went out
        assert _last_query(observer, pid) == "SELECT 'the last query before the check'"
    finally:
        conn.close()
        observer.close()


def test_a_connection_the_server_ended_is_replaced_before_the_next_query():
    conn, observer = _fresh(), _fresh()
    try:
        pid = conn.connection.info.backend_pid
        with observer.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while _last_query(observer, pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not conn.is_usable()
        # as Django does at the start of each request: the check fails, the connection is
        # closed, and the query runs on a new one instead of failing
        conn.health_check_done = False
        conn.close_if_health_check_failed()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            assert cur.fetchone()[0] != pid
    finally:
        conn.close()
        observer.close()


def test_a_connection_recovering_from_an_error_gets_a_real_query():
    conn, observer = _fresh(), _fresh()
    try:
        pid = conn.connection.info.backend_pid
        with conn.cursor() as cur:
            cur.execute("SELECT 'before the error'")
        conn.errors_occurred = True
        assert conn.is_usable()
        assert _last_query(observer, pid) == "SELECT 1"
    finally:
        conn.close()
        observer.close()
