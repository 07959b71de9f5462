"""
Attacks on the web layer itself: forged cross-site requests, stolen or planted sessions,
password guessing, script injection (CSP), insecure production cookies, secrets leaking into
pages or logs, and lease keys readable in the database.
"""
import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from tests import factories
from tests.conftest import ROOT
from tests.security.routes import fill, http_routes

from .conftest import make_victim

pytestmark = [pytest.mark.security, pytest.mark.django_db]

UNSAFE = ("post", "put", "patch", "delete")


# --- CSRF ---------------------------------------------------------------------------------

def test_no_view_is_exempt_from_csrf_except_the_machine_api():
    exempt = [r.label for r in http_routes() if getattr(r.callback, "csrf_exempt", False) and not r.is_machine_api]
    assert not exempt, f"views exempt from CSRF protection (only the bearer-token machine API may be): {exempt}"


def test_every_state_changing_request_without_a_csrf_token_is_refused(victim):
    """Logged in as the attempt's own expert (and as a superuser), a forged request from
    another site (no CSRF token) is refused on every route and changes nothing."""
    from .conftest import snapshot

    before = snapshot(victim)
    failures = []
    for who in (victim.user, factories.user(superuser=True)):
        client = Client(enforce_csrf_checks=True)
        client.force_login(who)
        for route in http_routes():
            if route.is_machine_api:
                continue
            url = fill(route, victim)
            for method in UNSAFE:
                response = getattr(client, method)(url, **({"data": {"x": "1"}} if method == "post" else {}))
                if response.status_code != 403 or b"CSRF verification failed" not in response.content:
                    failures.append(f"{method.upper()} {url} ({route.label}) as {who.username}: {response.status_code} without a CSRF token")
    assert not failures, "\n".join(failures)
    assert snapshot(victim) == before


def test_the_same_request_with_the_token_works(client):
    """The control for the test above: CSRF refusals are about the token, not the route."""
    user = factories.user()
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.get("/")
    token = c.cookies["csrftoken"].value
    assert c.post("/logout/", HTTP_X_CSRFTOKEN=token).status_code == 302
    assert c.get("/").status_code == 302  # logged out


# --- sessions -----------------------------------------------------------------------------

def test_a_planted_session_id_is_not_adopted_at_login():
    factories.user(username="ada")
    attacker = Client()
    attacker.get("/login/")
    attacker.session.save()
    planted = attacker.session.session_key
    victim = Client()
    victim.cookies["sessionid"] = planted  # the attacker fixed the victim's cookie
    victim.post("/login/", {"username": "ada", "password": factories.PASSWORD})
    assert victim.cookies["sessionid"].value != planted
    attacker.cookies["sessionid"] = planted
    assert attacker.get("/").status_code == 302  # the planted id did not become a logged-in session


def test_a_session_cookie_is_dead_after_logout():
    factories.user(username="ada")
    c = Client()
    c.post("/login/", {"username": "ada", "password": factories.PASSWORD})
    stolen = c.cookies["sessionid"].value
    assert c.get("/").status_code == 200
    c.post("/logout/")
    replay = Client()
    replay.cookies["sessionid"] = stolen
    assert replay.get("/").status_code == 302


def test_logout_needs_a_post_so_an_image_tag_cannot_log_you_out():
    user = factories.user()
    c = Client()
    c.force_login(user)
    assert c.get("/logout/").status_code == 405
    assert c.get("/").status_code == 200


def test_changing_the_password_or_deactivating_ends_other_sessions():
    user = factories.user()
    laptop, phone = Client(), Client()
    laptop.force_login(user)
    phone.force_login(user)
    user.set_password("a-brand-new-password-123")
    user.save()
    assert phone.get("/").status_code == 302
    other = factories.user()
    c = Client()
    c.force_login(other)
    other.is_active = False
    other.save(update_fields=["is_active"])
    assert c.get("/").status_code == 302


def test_login_lockout_cannot_be_dodged_with_forwarded_for_headers():
    factories.user(username="ada")
    c = Client(REMOTE_ADDR="203.0.113.7")
    for i in range(settings.AXES_FAILURE_LIMIT):
        c.post("/login/", {"username": "ada", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    r = c.post("/login/", {"username": "ada", "password": factories.PASSWORD}, HTTP_X_FORWARDED_FOR="198.51.100.200")
    assert r.status_code == 429
    assert b"Too many failed logins" in r.content


# --- Content-Security-Policy and headers on real responses -------------------------------

def _csp(response_headers) -> dict[str, list[str]]:
    header = response_headers.get("Content-Security-Policy", "")
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


def assert_strict_page(url: str, headers, html: str) -> None:
    csp = _csp(headers)
    assert csp, f"{url}: no Content-Security-Policy header"
    assert csp.get("default-src") == ["'self'"], (url, csp)
    assert csp.get("object-src") == ["'none'"] and csp.get("frame-ancestors") == ["'none'"], (url, csp)
    scripts = csp.get("script-src", [])
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (url, scripts)
    nonces = [s[len("'nonce-"):-1] for s in scripts if s.startswith("'nonce-")]
    assert len(nonces) == 1, (url, scripts)
    for tag in re.findall(r"<script\b[^>]*>", html):
        if 'type="application/json"' in tag:
            continue  # data (json_script), never executed
        assert f'nonce="{nonces[0]}"' in tag, f"{url}: a script without this response's nonce: {tag}"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), f"{url}: an inline event handler (blocked by the CSP)"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("X-Content-Type-Options") == "nosniff"


def test_every_html_page_carries_a_strict_csp_with_a_fresh_nonce(victim):
    staff = factories.user(superuser=True)
    checked = 0
    for who in (None, victim.user, staff):
        client = Client()
        if who:
            client.force_login(who)
        for route in http_routes():
            if "logout" in route.label:
                continue
            response = client.get(fill(route, victim))
            if response.status_code == 200 and response.get("Content-Type", "").startswith("text/html"):
                assert_strict_page(route.label, response.headers, response.content.decode())
                checked += 1
    assert checked >= 10
    a, b = Client().get("/login/"), Client().get("/login/")
    assert _csp(a.headers)["script-src"] != _csp(b.headers)["script-src"], "the nonce must change per response"


@pytest.mark.slow
def test_the_real_server_sends_the_csp_and_refuses_foreign_websocket_origins(live_url):
    import requests
    import websockets
    from websockets.sync.client import connect as ws_connect

    user = factories.user()
    attempt = factories.attempt(expert=user)
    s = requests.Session()
    r = s.get(f"{live_url}/login/")
    assert_strict_page("/login/", r.headers, r.text)
    r = s.post(f"{live_url}/login/", data={"username": user.username, "password": factories.PASSWORD,
                                          "csrfmiddlewaretoken": s.cookies["csrftoken"]}, headers={"Referer": f"{live_url}/login/"})
    page = s.get(f"{live_url}/attempts/{attempt.pk}/")
    assert page.status_code == 200
    assert_strict_page("attempt page", page.headers, page.text)
    ws_url = live_url.replace("http", "ws") + f"/ws/attempts/{attempt.pk}/events/"
    cookie = {"Cookie": f"sessionid={s.cookies['sessionid']}"}

    def connect(origin):
        with ws_connect(ws_url, additional_headers={**cookie, "Origin": origin}, open_timeout=10):
            return True

    assert connect(live_url) is True
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        connect("https://evil.example")
    assert refused.value.response.status_code == 403


def _production_probe(code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(BASELINER_PRODUCTION="1", DJANGO_SETTINGS_MODULE="baseliner.settings",
               SECRET_KEY="prod-" + "k" * 60, BASELINER_FERNET_KEYS="q9G0Xo5lq3L2Q5t7gVxRkO2l1Gm8zJz1Q1v3rV6cY0Q=",
               ALLOWED_HOSTS="baseliner.example.org")
    prog = "import django, json; django.setup()\n" + code
    r = subprocess.run([sys.executable, "-c", prog], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_production_responses_use_https_only_cookies_hsts_and_redirect_plain_http():
    out = _production_probe(
        "from django.test import Client, override_settings\n"
        "override_settings(STORAGES={'staticfiles': {'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'}}).enable()\n"
        "from django.conf import settings\n"
        "c = Client(HTTP_HOST='baseliner.example.org')\n"
        "plain = c.get('/login/')\n"
        "tls = c.get('/login/', headers={'X-Forwarded-Proto': 'https'})\n"
        "m = tls.cookies['csrftoken']\n"
        "print(json.dumps({'plain': [plain.status_code, plain.get('Location')], 'status': tls.status_code,"
        " 'hsts': tls.get('Strict-Transport-Security'), 'csp': tls.get('Content-Security-Policy'),"
        " 'csrf_secure': bool(m['secure']), 'csrf_samesite': m['samesite'],"
        " 'session': [settings.SESSION_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY, settings.SESSION_COOKIE_SAMESITE],"
        " 'debug': settings.DEBUG}))"
    )
    assert out["plain"] == [301, "https://baseliner.example.org/login/"]
    assert out["status"] == 200
    assert out["hsts"].startswith("max-age=31536000") and "includeSubDomains" in out["hsts"]
    assert "script-src 'self' 'nonce-" in out["csp"]
    assert out["csrf_secure"] is True and out["csrf_samesite"] == "Lax"
    assert out["session"] == [True, True, "Lax"]
    assert out["debug"] is False


# --- secrets ------------------------------------------------------------------------------

def _secrets(victim) -> dict[str, str]:
    from baseliner.machines import crypto

    lease = victim.objects["lease"]
    fernet_keys = [k._encryption_key for k in crypto.fernet()._fernets] + [k._signing_key for k in crypto.fernet()._fernets]
    import base64

    return {
        "SECRET_KEY": settings.SECRET_KEY,
        "lease private key": "BEGIN OPENSSH PRIVATE KEY",
        "lease credentials ciphertext": lease.credentials_encrypted[:40],
        "lease nonce": lease.nonce,
        **{f"fernet key part {i}": base64.urlsafe_b64encode(k).decode()[:20] for i, k in enumerate(fernet_keys)},
        **{f"fernet key part {i} (hex)": k.hex()[:20] for i, k in enumerate(fernet_keys)},
        "raw fernet key": (settings.BASELINER_FERNET_KEYS or ["<derived>"])[0],
    }


def test_no_secret_in_any_page_or_the_log_for_staff_or_expert(victim, caplog):
    from baseliner.machines.models import Host

    host = Host.objects.create(name="gpu-1", address="10.0.0.1")
    host.set_admin_key("-----BEGIN OPENSSH PRIVATE KEY-----\nHOSTADMINKEY\n")
    host.save()
    secrets = {**_secrets(victim), "host admin key": "HOSTADMINKEY", "host ciphertext": host.admin_key_encrypted[:40]}
    staff = factories.user(superuser=True)
    leaks = []
    with caplog.at_level("DEBUG"):
        for who in (victim.user, staff):
            client = Client()
            client.force_login(who)
            urls = [fill(r, victim) for r in http_routes() if "logout" not in r.label]
            urls += [f"/admin/machines/lease/{victim.objects['lease'].pk}/change/", f"/admin/machines/host/{host.pk}/change/"]
            for url in urls:
                for method in ("get",) if url.startswith("/admin/") else ("get", "post"):
                    response = getattr(client, method)(url)
                    content = response.content if not getattr(response, "streaming", False) else b"".join(response.streaming_content)
                    for name, value in secrets.items():
                        if value and value.encode() in content:
                            leaks.append(f"{method.upper()} {url} as {who.username} shows the {name}")
        for name, value in secrets.items():
            if value and value in caplog.text:
                leaks.append(f"the log contains the {name}")
    assert not leaks, "\n".join(sorted(set(leaks)))


def test_lease_and_host_keys_are_encrypted_at_rest(victim):
    from baseliner.machines.models import Host

    lease = victim.objects["lease"]
    host = Host.objects.create(name="gpu-2", address="10.0.0.2")
    host.set_admin_key("-----BEGIN OPENSSH PRIVATE KEY-----\nHOSTKEY2\n")
    host.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials_encrypted FROM machines_lease WHERE id = %s", [lease.pk])
        raw_lease = cursor.fetchone()[0]
        cursor.execute("SELECT admin_key_encrypted FROM machines_host WHERE id = %s", [host.pk])
        raw_host = cursor.fetchone()[0]
    for raw, secret in ((raw_lease, victim.marker), (raw_host, "HOSTKEY2")):
        assert raw.startswith("gAAAA"), "a Fernet token"
        assert "PRIVATE KEY" not in raw and secret not in raw
    # And they decrypt with the configured keys only.
    assert victim.marker in lease.credentials()
    from cryptography.fernet import Fernet, InvalidToken

    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(raw_lease.encode())


def test_fernet_keys_rotate_without_losing_old_credentials(settings):
    from cryptography.fernet import Fernet

    from baseliner.machines import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BASELINER_FERNET_KEYS = [old]
    token = crypto.encrypt("expert key")
    settings.BASELINER_FERNET_KEYS = [new, old]
    assert crypto.decrypt(token) == "expert key"
    assert Fernet(new.encode()).decrypt(crypto.encrypt("x").encode()) == b"x"  # new writes use the newest key


def test_leases_are_made_by_providers_not_by_hand_in_the_admin():
    client = Client()
    client.force_login(factories.user(superuser=True))
    assert client.post("/admin/machines/lease/add/", {}).status_code == 403
