"""Layer 1 of deadline enforcement for HTTP: every view that takes an ``attempt_id`` first
ends that attempt if its time is up (one indexed query when it is not)."""
import logging

from baseliner.web.middleware import UNAVAILABLE

from .lifecycle import attempt_enforce_deadline_by_id

log = logging.getLogger(__name__)


class DeadlineMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        attempt_id = view_kwargs.get("attempt_id")
        if attempt_id is not None and request.user.is_authenticated:
            try:
                attempt_enforce_deadline_by_id(attempt_id=int(attempt_id))
            except (TypeError, ValueError):
                pass
            except UNAVAILABLE as exc:  # the view meets the same outage and answers 503
                log.warning("deadline check skipped: %s", exc)
        return None
