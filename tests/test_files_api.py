"""The editor's file API over SFTP, confined to the expert's home (real sshd, real user)."""
import hashlib
import json

import pytest
from django.test import Client

from baseliner.recording.models import EditorSave
from tests import factories
from tests.workspace_support import *  # noqa: F401,F403

pytestmark = pytest.mark.slow


@pytest.fixture
def api(machine_attempt):
    client = Client()
    client.force_login(machine_attempt.expert)
    base = f"/api/attempts/{machine_attempt.attempt.pk}"

    class Api:
        m = machine_attempt

        def get(self, route, **params):
            return client.get(f"{base}/files/{route}", params)

        def post(self, route, **body):
            return client.post(f"{base}/files/{route}", json.dumps(body), content_type="application/json")

    return Api()


def test_open_edit_save_and_the_save_is_logged(api):
    api.m.run_as_expert("printf 'print(1)\\n' > solve.py && chmod 755 solve.py")
    listing = api.get("").json()
    assert {"name": "solve.py", "path": "solve.py", "type": "file"}.items() <= next(e for e in listing["entries"] if e["name"] == "solve.py").items()
    opened = api.get("content", path="solve.py").json()
    assert opened["content"] == "print(1)\n"
    saved = api.post("content", path="solve.py", content="print(2)\n", version=opened["version"])
    assert saved.status_code == 200, saved.content
    assert api.m.run_as_expert("cat solve.py; stat -c %a solve.py").stdout == "print(2)\n755\n"
    save = EditorSave.objects.get(attempt=api.m.attempt)
    assert (save.path, save.size, save.sha256) == ("solve.py", 9, hashlib.sha256(b"print(2)\n").hexdigest())
    assert api.m.run_as_expert("ls -A | grep -c bl-save || true").stdout.strip() == "0"  # no temporary file left


def test_a_file_changed_on_the_machine_is_not_overwritten_without_asking(api):
    api.m.run_as_expert("echo one > notes.txt")
    opened = api.get("content", path="notes.txt").json()
    api.m.run_as_expert("echo two > notes.txt")  # same size and probably the same second
    refused = api.post("content", path="notes.txt", content="mine\n", version=opened["version"])
    assert refused.status_code == 409
    assert refused.json()["error"] == "'notes.txt' changed on the machine since you opened it."
    assert refused.json()["current"]["sha256"] == hashlib.sha256(b"two\n").hexdigest()
    assert api.m.run_as_expert("cat notes.txt").stdout == "two\n"
    forced = api.post("content", path="notes.txt", content="mine\n", version=opened["version"], overwrite=True)
    assert forced.status_code == 200
    assert api.m.run_as_expert("cat notes.txt").stdout == "mine\n"
    assert api.post("content", path="notes.txt", content="new\n").status_code == 409  # "new" file that exists


@pytest.mark.parametrize("path, message", [
    ("../../etc/passwd", "'..' is not allowed"),
    ("sub/../../x", "'..' is not allowed"),
    ("/etc/passwd", "absolute paths are not allowed"),
    ("~root/.bashrc", "absolute paths are not allowed"),
])
def test_path_traversal_is_refused(api, path, message):
    for response in (api.get("content", path=path), api.post("content", path=path, content="x"),
                     api.post("delete", path=path), api.post("rename", path="a", to=path)):
        assert response.status_code == 400
        assert message in response.json()["error"]


def test_symlinks_out_of_home_and_special_files_are_refused(api):
    api.m.run_as_expert("ln -s /etc etc-link && ln -s /etc/hostname host-link && mkfifo pipe && mkdir -p d && ln -s d inside-link")
    for path in ("etc-link/hostname", "host-link"):
        response = api.get("content", path=path)
        assert response.status_code == 403 and "outside your home folder" in response.json()["error"]
        assert api.post("content", path=path, content="x", overwrite=True).status_code == 403
    assert api.get("", path="etc-link").status_code == 403
    fifo = api.get("content", path="pipe")
    assert fifo.status_code == 415 and "not a regular file" in fifo.json()["error"]
    types = {e["name"]: e["type"] for e in api.get("").json()["entries"]}
    assert (types["etc-link"], types["inside-link"], types["pipe"]) == ("link-outside", "link-dir", "other")
    assert api.post("delete", path="etc-link").status_code == 200  # removes the link, not /etc
    assert api.m.run("test -d /etc && echo ok").stdout == "ok\n"


def test_large_and_binary_files_are_refused_with_a_message(api):
    api.m.run_as_expert("head -c 3000000 /dev/zero | tr '\\0' a > big.txt; printf 'a\\0b' > blob.bin")
    big = api.get("content", path="big.txt")
    assert big.status_code == 413 and "too large to open in the editor" in big.json()["error"]
    blob = api.get("content", path="blob.bin")
    assert blob.status_code == 415 and "binary" in blob.json()["error"]


def test_create_rename_delete(api):
    assert api.post("create", path="pkg", type="dir").status_code == 201
    assert api.post("create", path="pkg/mod.py").status_code == 201
    assert api.post("create", path="pkg/mod.py").status_code == 409
    assert api.post("rename", path="pkg/mod.py", to="pkg/main.py").status_code == 200
    assert api.m.run_as_expert("ls pkg").stdout == "main.py\n"
    assert api.post("delete", path="pkg").status_code == 409  # not empty
    assert api.post("delete", path="pkg/main.py").status_code == 200
    assert api.post("delete", path="pkg").status_code == 200
    assert api.get("content", path="pkg/main.py").status_code == 404


def test_only_the_attempts_expert_may_use_the_api(api, client):
    url = f"/api/attempts/{api.m.attempt.pk}/files/"
    assert client.get(url).status_code == 401
    client.force_login(factories.user())
    assert client.get(url).status_code == 404
    client.force_login(factories.user(staff=True))
    assert client.get(url).status_code == 403
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(api.m.expert)
    response = csrf_client.post(url + "create", json.dumps({"path": "x"}), content_type="application/json")
    assert response.status_code == 403


def test_terminal_tabs_are_tmux_sessions(api, machine_attempt):
    client = Client()
    client.force_login(machine_attempt.expert)
    base = f"/api/attempts/{machine_attempt.attempt.pk}/terminals/"
    assert client.get(base).json() == {"terminals": []}
    machine_attempt.run_as_expert("tmux new-session -d -s one && tmux new-session -d -s two")
    assert client.get(base).json() == {"terminals": ["one", "two"]}
    ok = client.post(base + "rename", json.dumps({"name": "two", "to": "build"}), content_type="application/json")
    assert ok.status_code == 200
    bad = client.post(base + "rename", json.dumps({"name": "one", "to": "x;rm"}), content_type="application/json")
    assert bad.status_code == 400
    client.post(base + "close", json.dumps({"name": "one"}), content_type="application/json")
    assert client.get(base).json() == {"terminals": ["build"]}
