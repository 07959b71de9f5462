"""
The route inventory shared by the security tests: every HTTP route (Django's URL resolver)
and every WebSocket route (Channels), with how to fill in its parameters so that it points
at *another expert's* objects.

Routes added later are covered automatically. A route whose parameter this module does not
know fails the tests with a message saying what to add here; a route that experts may use
without an id of someone else's object goes into PUBLIC or EXPERT_PAGES below.
"""
from dataclasses import dataclass, field

from django.urls import URLResolver, get_resolver, reverse

# Routes anyone may open (no login): they must still never show another expert's data.
PUBLIC = {"login", "logout", "invitation-accept", "healthz", "favicon", "admin:login", "admin:logout"}
# Path prefixes (after the leading "/") of routes that only staff may use. An expert must be
# refused on every one of them, even for their own attempt.
STAFF_PREFIXES = ("admin/", "review/", "staff/", "ws/review/", "ws/staff/")
# Path prefixes of routes the machine calls with a per-lease bearer token (no session, no
# CSRF cookie): a browser session must not work on them.
MACHINE_PREFIXES = ("api/machine/",)


@dataclass
class Route:
    route: str  # as declared, e.g. "attempts/<int:attempt_id>/"
    name: str  # "namespace:name", or "" when unnamed
    params: tuple[str, ...]
    callback: object = field(default=None, repr=False)
    websocket: bool = False

    @property
    def label(self) -> str:
        return self.name or self.route

    @property
    def is_staff_only(self) -> bool:
        return self.route.startswith(STAFF_PREFIXES) and not self.is_public

    @property
    def is_machine_api(self) -> bool:
        return self.route.startswith(MACHINE_PREFIXES)

    @property
    def is_public(self) -> bool:
        return (self.name in PUBLIC or self.route.rstrip("/") in PUBLIC or self.route in ("favicon.ico",))


def _walk(resolver, prefix="", namespace="", params=(), websocket=False):
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}:{p.namespace}".strip(":") if p.namespace else namespace
            yield from _walk(p, prefix + str(p.pattern), ns, params + tuple(p.pattern.regex.groupindex), websocket)
        else:
            name = f"{namespace}:{p.name}".strip(":") if p.name else ""
            yield Route(prefix + str(p.pattern), name, params + tuple(p.pattern.regex.groupindex), p.callback, websocket)


def http_routes() -> list[Route]:
    return list(_walk(get_resolver()))


def websocket_routes() -> list[Route]:
    from baseliner.routing import websocket_urlpatterns

    class _R:
        url_patterns = websocket_urlpatterns

    return list(_walk(_R, websocket=True))


class UnknownParameter(AssertionError):
    pass


def fill(route: Route, victim: "Victim") -> str:
    """The route's path with every parameter pointing at the victim's objects."""
    if route.route.startswith("admin/"):
        values = {"object_id": str(victim.attempt.pk), "id": str(victim.user.pk), "app_label": "attempts",
                  "content_type_id": "1", "url": "attempts/attempt/"}
    else:
        values = {}
    for p in route.params:
        if p in values:
            continue
        builder = PARAMETERS.get(p)
        if builder is None:
            raise UnknownParameter(
                f"route {route.label!r} ({route.route}) has a parameter {p!r} that the security route inventory "
                f"does not know. Add to PARAMETERS in tests/security/routes.py how to build a value of {p!r} "
                f"that belongs to another expert (e.g. the victim's attempt, lease, recording, file), so the "
                f"test can check that an intruder gets 404/403 and no data."
            )
        values[p] = str(builder(victim))
    if route.websocket:
        path = route.route
        for p in route.params:
            path = _substitute(path, p, values[p])
        return "/" + path
    if route.name:
        return reverse(route.name, kwargs={p: values[p] for p in route.params})
    path = route.route
    for p in route.params:
        path = _substitute(path, p, values[p])
    path = path.replace("^", "").replace("$", "")
    if "(" in path or "\\" in path:
        raise UnknownParameter(f"unnamed regex route {route.route!r}: give it a name so the inventory can reverse it")
    return "/" + path


def _substitute(path: str, param: str, value: str) -> str:
    import re

    path = re.sub(r"\(\?P<" + param + r">[^)]*\)", value, path)  # re_path
    return re.sub(r"<(?:\w+:)?" + param + ">", value, path)  # path


@dataclass
class Victim:
    """Another expert's attempt with one of every object an id in a URL can point at; every
    piece of text in it carries ``marker`` so leaks are easy to find."""

    user: object
    attempt: object
    marker: str
    objects: dict


def _first(victim, key):
    return victim.objects[key].pk


# parameter name -> the victim's value. Extend when you add a route with a new parameter.
PARAMETERS = {
    "attempt_id": lambda v: v.attempt.pk,
    "pk": lambda v: v.attempt.pk,
    "lease_id": lambda v: _first(v, "lease"),
    "recording_id": lambda v: _first(v, "recording"),
    "entry_id": lambda v: _first(v, "score_entry"),
    "score_id": lambda v: _first(v, "score_entry"),
    "run_id": lambda v: _first(v, "score_run"),  # a scoring run (api/machine/score/<run_id>)
    "note_id": lambda v: _first(v, "note"),
    "command_id": lambda v: _first(v, "command"),
    "save_id": lambda v: _first(v, "editor_save"),
    "response_id": lambda v: _first(v, "survey_response"),
    "annotation_id": lambda v: _first(v, "annotation"),  # staff annotations (review/)
    "job_id": lambda v: _first(v, "export_job"),  # export bundles (review/)
    "expert_id": lambda v: v.user.pk,
    "user_id": lambda v: v.user.pk,
    # file paths in the victim's home (editor/file API): a real file name of theirs
    "path": lambda v: "solution.py",
    "file_path": lambda v: "solution.py",
    "filename": lambda v: "solution.py",
    # terminals are tmux session names within an attempt
    "terminal": lambda v: "main",
    "terminal_id": lambda v: "main",
    "name": lambda v: "main",
    "token": lambda v: "not-a-real-token",
}
