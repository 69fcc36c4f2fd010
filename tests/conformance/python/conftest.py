"""Fixtures for the Python conformance suite.

The official `descope==2.16.0` SDK, unmodified, talks to a running Portcullis
Descope-API emulator. `tests/conformance/run` starts the emulator and passes
its address and secrets in these environment variables:

    EMULATOR_URL, EMULATOR_PROJECT_ID, EMULATOR_MANAGEMENT_KEY,
    EMULATOR_CONTROL_TOKEN, EMULATOR_KEY_TYPE (ec | rsa)

Seeding goes through the management API with the SDK's own management client;
faults and switches go through the emulator's control API (`/emulator/*`) over
plain HTTP.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import pytest
from descope import AssociatedTenant, DescopeClient


@dataclass(frozen=True)
class Env:
    url: str
    project_id: str
    management_key: str
    control_token: str
    key_type: str


@pytest.fixture(scope="session")
def env() -> Env:
    missing = [
        n
        for n in (
            "EMULATOR_URL",
            "EMULATOR_PROJECT_ID",
            "EMULATOR_MANAGEMENT_KEY",
            "EMULATOR_CONTROL_TOKEN",
        )
        if not os.environ.get(n)
    ]
    if missing:
        pytest.fail(f"run through tests/conformance/run (missing {', '.join(missing)})")
    return Env(
        url=os.environ["EMULATOR_URL"].rstrip("/"),
        project_id=os.environ["EMULATOR_PROJECT_ID"],
        management_key=os.environ["EMULATOR_MANAGEMENT_KEY"],
        control_token=os.environ["EMULATOR_CONTROL_TOKEN"],
        key_type=os.environ.get("EMULATOR_KEY_TYPE", "ec"),
    )


@pytest.fixture(scope="session")
def client(env: Env) -> DescopeClient:
    """Auth + management client, exactly as an application would build it."""
    return DescopeClient(env.project_id, management_key=env.management_key, base_url=env.url)


@pytest.fixture()
def fresh_client(env: Env) -> DescopeClient:
    """A client with an empty key cache (no management key)."""
    return DescopeClient(env.project_id, base_url=env.url)


class Control:
    """The emulator's control API, over plain HTTP."""

    def __init__(self, env: Env):
        self._http = httpx.Client(
            base_url=f"{env.url}/emulator/",
            headers={"Authorization": f"Bearer {env.control_token}"},
            timeout=10,
        )

    def post(self, path: str, body: dict | None = None) -> dict:
        r = self._http.post(path, json=body if body is not None else {})
        assert r.status_code == 200, f"control {path}: {r.status_code} {r.text}"
        return r.json() if r.content else {}

    def get(self, path: str, params: dict | None = None) -> dict:
        r = self._http.get(path, params=params or {})
        assert r.status_code == 200, f"control {path}: {r.status_code} {r.text}"
        return r.json()

    def clear_faults(self) -> None:
        r = self._http.delete("faults")
        assert r.status_code == 200, f"control DELETE faults: {r.status_code} {r.text}"


@pytest.fixture(scope="session")
def control(env: Env) -> Control:
    return Control(env)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Seed:
    """What the session-wide management seeding created."""

    perm_read: str
    perm_write: str
    perm_billing: str
    role_viewer: str
    role_editor: str
    role_billing: str
    tenant_a: str
    tenant_b: str
    tenant_sso: str
    users: list = field(default_factory=list)


@pytest.fixture(scope="session")
def seed(client: DescopeClient) -> Seed:
    """Permissions, roles and tenants, created with the SDK's management client."""
    s = Seed(
        perm_read=unique("docs.read"),
        perm_write=unique("docs.write"),
        perm_billing=unique("billing.read"),
        role_viewer=unique("viewer"),
        role_editor=unique("editor"),
        role_billing=unique("billing-admin"),
        tenant_a=unique("TA"),
        tenant_b=unique("TB"),
        tenant_sso=unique("TSSO"),
    )
    m = client.mgmt
    m.permission.create(s.perm_read, "read documents")
    m.permission.create(s.perm_write, "write documents")
    m.permission.create(s.perm_billing, "read invoices")
    m.role.create(s.role_viewer, "reader", [s.perm_read])
    m.role.create(s.role_editor, "writer", [s.perm_read, s.perm_write])
    m.role.create(s.role_billing, "billing", [s.perm_billing])
    for tid in (s.tenant_a, s.tenant_b, s.tenant_sso):
        # The emulator's IdP page serves tenants created with enforceSSO.
        created = m.tenant.create(f"Tenant {tid}", id=tid, enforce_sso=tid == s.tenant_sso)
        assert created.get("id") == tid, created
    return s


@dataclass
class User:
    login_id: str
    email: str
    user_id: str
    name: str


@pytest.fixture()
def make_user(client: DescopeClient, seed: Seed):
    """Creates a test user through `mgmt.user.create_test_user`."""

    def make(roles=None, tenants=None, name=None) -> User:
        login = f"{unique('user')}@example.com"
        name = name or f"Test {login.split('@')[0]}"
        res = client.mgmt.user.create_test_user(
            login,
            email=login,
            display_name=name,
            role_names=roles if roles is not None else [seed.role_viewer],
            user_tenants=[AssociatedTenant(t, r) for t, r in (tenants or [])],
            verified_email=True,
        )
        user = res["user"]
        assert login in user["loginIds"], user
        return User(login_id=login, email=login, user_id=user["userId"], name=name)

    return make


@pytest.fixture()
def login(client: DescopeClient):
    """Signs a user in via a test-user magic link; returns the SDK's JWT dict."""
    from descope import DeliveryMethod

    def do(user: User) -> dict:
        res = client.mgmt.user.generate_magic_link_for_test_user(
            DeliveryMethod.EMAIL, user.login_id, "http://127.0.0.1:9/verify"
        )
        return client.magiclink.verify(link_token(res["link"]))

    return do


def link_token(link: str) -> str:
    """The `t` query parameter of a magic/enchanted link."""
    values = parse_qs(urlparse(link).query).get("t")
    assert values and values[0], f"no t= in link {link!r}"
    return values[0]


class _FormParser(HTMLParser):
    """Collects forms with their action, method and named controls."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._current: dict | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = {
                "action": a.get("action", ""),
                "method": (a.get("method") or "get").lower(),
                "hidden": {},
                "choices": [],  # (name, value, label-ish)
                "text": [],
            }
            self.forms.append(self._current)
            return
        f = self._current
        if f is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            typ = (a.get("type") or "text").lower()
            if typ == "hidden":
                f["hidden"][name] = a.get("value", "")
            elif typ in ("radio", "submit", "checkbox"):
                f["choices"].append((name, a.get("value", ""), a))
            else:
                f["text"].append((name, a.get("value", ""), a))
        elif tag == "button":
            f["choices"].append((name, a.get("value", ""), a))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select:
            f["choices"].append((self._select, a.get("value", ""), a))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form":
            self._current = None


def submit_provider_page(page_url: str, user: User, typed: bool = False) -> httpx.Response:
    """Fetches a hosted provider page (OAuth consent / SSO IdP) with plain HTTP
    and submits its form for `user`, the way a person picking that user does.
    With `typed`, the login id is typed into the page's free-text form instead
    of picking a listed account. Returns the (unfollowed) response."""
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        page = http.get(page_url)
        # The page may itself be reached through a redirect.
        hops = 0
        while page.is_redirect and hops < 5:
            page = http.get(urljoin(str(page.url), page.headers["location"]))
            hops += 1
        assert page.status_code == 200, f"{page_url}: {page.status_code} {page.text[:300]}"
        assert "text/html" in page.headers.get("content-type", ""), page.headers
        parser = _FormParser()
        parser.feed(page.text)
        assert parser.forms, f"no form on the provider page:\n{page.text[:1000]}"
        wanted = {user.login_id, user.user_id, user.email}

        def send(form, fields):
            action = urljoin(str(page.url), form["action"] or str(page.url))
            if form["method"] == "post":
                return http.post(action, data=fields)
            return http.get(action, params=fields)

        # First choice: the form that names this user (a hidden user field, or
        # a choice/button carrying the user's id or login id): the "pick this
        # account" button a person clicks.
        for form in parser.forms if not typed else []:
            fields = dict(form["hidden"])
            if wanted & set(form["hidden"].values()):
                return send(form, fields)
            for name, value, attrs in form["choices"]:
                if name and value in wanted:
                    fields[name] = value
                    return send(form, fields)
                if wanted & {v for v in attrs.values() if v}:
                    return send(form, fields)
        # Typing a login id into a free-text form.
        for form in parser.forms if typed else []:
            fields = dict(form["hidden"])
            for name, value, attrs in form["text"]:
                if any(k in name.lower() for k in ("login", "email", "user")):
                    fields[name] = user.login_id
                    return send(form, fields)
        raise AssertionError(f"no form on the provider page offers {user.login_id}:\n{page.text[:2000]}")


def code_from_redirect(resp: httpx.Response, return_url: str) -> str:
    assert resp.is_redirect, f"expected a redirect, got {resp.status_code} {resp.text[:300]}"
    location = resp.headers["location"]
    assert location.startswith(return_url), f"redirect to {location!r}, not to {return_url!r}"
    values = parse_qs(urlparse(location).query).get("code")
    assert values and values[0], f"no code in {location!r}"
    return values[0]


class SpawnedEmulator:
    """A second emulator with its own CLI flags, for cases that need a
    different start-up configuration (seed file, issuer mode)."""

    def __init__(self, *args: str, key_type: str = "ec"):
        import re
        import subprocess

        binary = os.environ.get("PORTCULLIS_BIN")
        if not binary:
            pytest.fail("PORTCULLIS_BIN is not set (run through tests/conformance/run)")
        self.project_id = "P2spawned" + uuid.uuid4().hex[:19]
        self.management_key = "K-" + uuid.uuid4().hex
        self.control_token = "T-" + uuid.uuid4().hex
        self.proc = subprocess.Popen(
            [
                binary, "emulator", "--listen", "127.0.0.1:0",
                "--project-id", self.project_id,
                "--management-key", self.management_key,
                "--control-token", self.control_token,
                "--key-type", key_type, *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Blocks until the first line, or EOF if the process exits.
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.close()
            pytest.fail(f"emulator did not start: {line!r} {self.proc.stderr.read()}")
        self.url = m.group(1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
