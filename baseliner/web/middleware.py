"""A clear temporary error page, not a crash page, while the database or Redis is down.

Two ways in, so an outage gets the same page wherever it strikes: ``process_exception`` for
an error raised by a view (also with DEBUG on), and ``server_error`` (``handler500``) for one
raised anywhere else -- a middleware's ``process_view`` or ``process_request`` (the session
and user lookups, deadline enforcement), or a template.
"""
import sys

import logging

from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError
from django.template.response import TemplateResponse

log = logging.getLogger(__name__)

try:  # redis-py's connection errors (cache, channel layer)
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    _REDIS_ERRORS: tuple = (RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover
    _REDIS_ERRORS = ()

from django.db.utils import OperationalError
from kombu.exceptions import OperationalError as BrokerError  # Celery's broker (Redis) is down

UNAVAILABLE = (OperationalError, InterfaceError, BrokerError, *_REDIS_ERRORS)


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UNAVAILABLE):
            log.error("service unavailable while handling %s: %s", request.path, exception)
            return unavailable_response(request)
        return None


def unavailable_response(request):
    """The 503 page. Rendered without touching what may be down: the lazy ``request.user`` and
    the messages storage both read the session, which lives in the database."""
    request.user = AnonymousUser()
    context = {"message": "A service baseliner depends on is briefly unavailable.", "user": request.user, "messages": []}
    response = TemplateResponse(request, "503.html", context, status=503)
    response["Retry-After"] = "5"
    return response.render()


def server_error(request):
    """``handler500``: the 503 page for an outage raised outside a view, Django's 500 page otherwise."""
    from django.views.defaults import server_error as default_server_error

    if isinstance(sys.exc_info()[1], UNAVAILABLE):
        return unavailable_response(request)
    return default_server_error(request)
