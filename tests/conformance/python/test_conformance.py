"""The official Python SDK (descope==2.16.0) against the emulator: one
function per case of the conformance list (docs/emulator.md)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from conftest import (
    code_from_redirect,
    link_token,
    submit_provider_page,
    unique,
)
from descope import AuthException, DeliveryMethod, DescopeClient, RateLimitException

RETURN_URL = "http://127.0.0.1:9/callback"


def jwt_header(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def session_jwt(res: dict) -> str:
    return res["sessionToken"]["jwt"]


def refresh_jwt(res: dict) -> str:
    return res["refreshSessionToken"]["jwt"]


# --- keys -----------------------------------------------------------------


def test_jwks_has_the_configured_key_type(env, client, make_user, login):
    keys = httpx.get(f"{env.url}/v2/keys/{env.project_id}").json()["keys"]
    assert keys, "empty JWKS"
    want_kty = {"ec": "EC", "rsa": "RSA"}[env.key_type]
    for k in keys:
        assert k["kty"] == want_kty, k
        assert k["kid"] and k["alg"], k
        assert "d" not in k and "p" not in k, "private key material in the JWKS"
    res = login(make_user())
    header = jwt_header(session_jwt(res))
    assert header["kid"] in {k["kid"] for k in keys}
    assert header["alg"].startswith({"ec": "ES", "rsa": "RS"}[env.key_type])
    # A client with an empty key cache fetches /v2/keys and verifies.
    fresh = DescopeClient(env.project_id, base_url=env.url)
    assert fresh.validate_session(session_jwt(res))["userId"] == res["userId"]


def test_unknown_project_has_no_keys(env):
    r = httpx.get(f"{env.url}/v2/keys/Pnot{env.project_id[4:]}")
    assert r.status_code >= 400


def test_rotated_key_is_fetched_on_unknown_kid(env, client, control, make_user, login):
    user = make_user()
    before = login(user)
    client.validate_session(session_jwt(before))  # warms the key cache
    new_kid = control.post("rotate-keys", {})["kid"]
    after = login(user)
    assert jwt_header(session_jwt(after))["kid"] == new_kid
    assert client.validate_session(session_jwt(after))["userId"] == user.user_id
    # The old key is still published, so older sessions stay valid.
    assert client.validate_session(session_jwt(before))["userId"] == user.user_id


# --- management API -------------------------------------------------------


def test_management_rejects_a_wrong_key(env):
    bad = DescopeClient(env.project_id, management_key="not-the-key", base_url=env.url)
    with pytest.raises(AuthException) as e:
        bad.mgmt.user.create_test_user(f"{unique('nobody')}@example.com")
    assert e.value.status_code in (401, 403)


def test_management_loads_a_created_user(client, make_user, seed):
    user = make_user(roles=[seed.role_editor], tenants=[(seed.tenant_a, [seed.role_billing])])
    loaded = client.mgmt.user.load(user.login_id)["user"]
    assert loaded["userId"] == user.user_id
    assert loaded["email"] == user.email
    assert seed.role_editor in loaded["roleNames"]
    assert [t["tenantId"] for t in loaded["userTenants"]] == [seed.tenant_a]


def test_management_reads_back_tenants_roles_permissions(client, seed):
    tenants = {t["id"]: t for t in client.mgmt.tenant.load_all()["tenants"]}
    assert {seed.tenant_a, seed.tenant_b, seed.tenant_sso} <= set(tenants)
    assert tenants[seed.tenant_a]["name"] == f"Tenant {seed.tenant_a}"
    assert client.mgmt.tenant.load(seed.tenant_b)["id"] == seed.tenant_b
    roles = {r["name"]: r for r in client.mgmt.role.load_all()["roles"]}
    assert sorted(roles[seed.role_editor]["permissionNames"]) == sorted([seed.perm_read, seed.perm_write])
    perms = {p["name"] for p in client.mgmt.permission.load_all()["permissions"]}
    assert {seed.perm_read, seed.perm_write, seed.perm_billing} <= perms


def test_management_updates_and_searches_users(client, seed, make_user):
    user = make_user(roles=[seed.role_viewer])
    client.mgmt.user.update_display_name(user.login_id, "Renamed Person")
    client.mgmt.user.add_tenant(user.login_id, seed.tenant_b)
    client.mgmt.user.set_roles(user.login_id, [seed.role_editor])
    loaded = client.mgmt.user.load(user.login_id)["user"]
    assert loaded["name"] == "Renamed Person"
    assert loaded["roleNames"] == [seed.role_editor]
    assert seed.tenant_b in [t["tenantId"] for t in loaded["userTenants"]]
    found = client.mgmt.user.search_all_test_users(emails=[user.email])["users"]
    assert [u["userId"] for u in found] == [user.user_id]
    client.mgmt.user.remove_tenant(user.login_id, seed.tenant_b)
    loaded = client.mgmt.user.load_by_user_id(user.user_id)["user"]
    assert seed.tenant_b not in [t["tenantId"] for t in loaded["userTenants"]]


def test_management_unknown_user_is_an_error(client):
    with pytest.raises(AuthException) as e:
        client.mgmt.user.load(f"{unique('ghost')}@example.com")
    assert 400 <= e.value.status_code < 500


# --- magic link -----------------------------------------------------------


def test_magic_link_for_test_user_then_verify(client, make_user):
    user = make_user()
    res = client.mgmt.user.generate_magic_link_for_test_user(
        DeliveryMethod.EMAIL, user.login_id, "http://127.0.0.1:9/verify"
    )
    assert res["link"].startswith("http://127.0.0.1:9/verify"), res
    token = link_token(res["link"])
    out = client.magiclink.verify(token)
    assert out["userId"] == user.user_id
    assert out["sessionToken"]["drn"] == "DS"
    assert out["refreshSessionToken"]["drn"] == "DSR"
    assert out["user"]["loginIds"] == [user.login_id]
    assert client.validate_session(session_jwt(out))["userId"] == user.user_id
    # A magic-link token is single use.
    with pytest.raises(AuthException) as e:
        client.magiclink.verify(token)
    assert 400 <= e.value.status_code < 500


def test_test_user_helpers_refuse_ordinary_users(client):
    login_id = f"{unique('real')}@example.com"
    client.mgmt.user.create(login_id, email=login_id)
    with pytest.raises(AuthException) as e:
        client.mgmt.user.generate_magic_link_for_test_user(DeliveryMethod.EMAIL, login_id, "http://127.0.0.1:9/v")
    assert 400 <= e.value.status_code < 500
    with pytest.raises(AuthException):
        client.mgmt.user.generate_otp_for_test_user(DeliveryMethod.EMAIL, login_id)
    with pytest.raises(AuthException):
        client.mgmt.user.generate_enchanted_link_for_test_user(login_id, "http://127.0.0.1:9/v")


# --- OTP ------------------------------------------------------------------


def test_otp_for_test_user_then_verify_code(client, make_user):
    user = make_user()
    code = client.mgmt.user.generate_otp_for_test_user(DeliveryMethod.EMAIL, user.login_id)["code"]
    assert code.isdigit(), code
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(AuthException) as e:
        client.otp.verify_code(DeliveryMethod.EMAIL, user.login_id, wrong)
    assert 400 <= e.value.status_code < 500
    assert "E061102" in (e.value.error_message or ""), e.value.error_message
    out = client.otp.verify_code(DeliveryMethod.EMAIL, user.login_id, code)
    assert out["userId"] == user.user_id
    assert client.validate_session(session_jwt(out))["userId"] == user.user_id


def test_otp_too_many_wrong_codes_burns_the_code(client, make_user):
    user = make_user()
    code = client.mgmt.user.generate_otp_for_test_user(DeliveryMethod.EMAIL, user.login_id)["code"]
    wrong = "000000" if code != "000000" else "111111"
    messages = []
    for _ in range(5):
        with pytest.raises(AuthException) as e:
            client.otp.verify_code(DeliveryMethod.EMAIL, user.login_id, wrong)
        messages.append(e.value.error_message or "")
    assert "E061103" in messages[-1], messages
    with pytest.raises(AuthException):
        client.otp.verify_code(DeliveryMethod.EMAIL, user.login_id, code)


def test_otp_sign_in_then_outbox_code(env, client, control, make_user):
    user = make_user()
    masked = client.otp.sign_in(DeliveryMethod.EMAIL, user.login_id)
    assert masked and "@" in masked, masked
    entries = control.get("outbox.json")
    entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
    codes = [e.get("code") for e in entries if e.get("to") in (user.email, user.login_id) and e.get("code")]
    assert codes, f"no OTP for {user.login_id} in the outbox: {entries}"
    out = client.otp.verify_code(DeliveryMethod.EMAIL, user.login_id, codes[-1])
    assert out["userId"] == user.user_id


# --- enchanted link -------------------------------------------------------


def test_enchanted_link_pending_then_verified(client, make_user):
    user = make_user()
    res = client.mgmt.user.generate_enchanted_link_for_test_user(user.login_id, "http://127.0.0.1:9/verify")
    pending_ref = res["pendingRef"]
    assert pending_ref and res["link"], res
    with pytest.raises(AuthException) as e:
        client.enchantedlink.get_session(pending_ref)
    assert e.value.status_code == 401
    assert "E062503" in (e.value.error_message or ""), e.value.error_message
    client.enchantedlink.verify(link_token(res["link"]))
    out = client.enchantedlink.get_session(pending_ref)
    assert out["userId"] == user.user_id
    assert client.validate_session(session_jwt(out))["userId"] == user.user_id


# --- validate / refresh ---------------------------------------------------


def test_validate_refresh_and_validate_and_refresh(env, client, control, make_user, login):
    user = make_user()
    res = login(user)
    valid = client.validate_session(session_jwt(res))
    assert valid["userId"] == user.user_id
    assert valid["projectId"] == env.project_id

    refreshed = client.refresh_session(refresh_jwt(res))
    assert refreshed["userId"] == user.user_id
    assert client.validate_session(session_jwt(refreshed))["userId"] == user.user_id

    # A live session is returned as is.
    same = client.validate_and_refresh_session(session_jwt(res), refresh_jwt(res))
    assert same["sessionToken"]["jwt"] == session_jwt(res)

    # An expired session is refreshed.
    expired = control.post("mint", {"sub": user.user_id, "ttlSecs": -120})["token"]
    with pytest.raises(AuthException) as e:
        client.validate_session(expired)
    assert e.value.status_code == 401
    renewed = client.validate_and_refresh_session(expired, refresh_jwt(res))
    assert renewed["userId"] == user.user_id
    assert session_jwt(renewed) != expired


def test_refresh_with_a_garbage_token_fails(client):
    with pytest.raises(AuthException):
        client.refresh_session("not-a-jwt")


# --- roles / permissions / tenants ----------------------------------------


def test_roles_and_permissions(client, seed, make_user, login):
    user = make_user(roles=[seed.role_editor], tenants=[(seed.tenant_a, [seed.role_billing])])
    res = client.validate_session(session_jwt(login(user)))
    assert client.validate_roles(res, [seed.role_editor])
    assert not client.validate_roles(res, [seed.role_editor, seed.role_billing])
    assert not client.validate_roles(res, ["no-such-role"])
    assert client.validate_permissions(res, [seed.perm_read, seed.perm_write])
    assert not client.validate_permissions(res, [seed.perm_billing])


def test_tenant_roles_and_permissions(client, seed, make_user, login):
    user = make_user(roles=[], tenants=[(seed.tenant_a, [seed.role_billing]), (seed.tenant_b, [])])
    res = client.validate_session(session_jwt(login(user)))
    assert set(res["tenants"]) == {seed.tenant_a, seed.tenant_b}, res["tenants"]
    assert client.validate_tenant_roles(res, seed.tenant_a, [seed.role_billing])
    assert not client.validate_tenant_roles(res, seed.tenant_b, [seed.role_billing])
    assert not client.validate_tenant_roles(res, seed.tenant_sso, [seed.role_billing])
    assert client.validate_tenant_permissions(res, seed.tenant_a, [seed.perm_billing])
    assert not client.validate_tenant_permissions(res, seed.tenant_a, [seed.perm_write])
    assert not client.validate_tenant_permissions(res, seed.tenant_b, [seed.perm_billing])
    # Tenant roles are not project roles.
    assert not client.validate_roles(res, [seed.role_billing])


def test_select_tenant_sets_dct(client, seed, make_user, login):
    user = make_user(roles=[], tenants=[(seed.tenant_a, [seed.role_billing]), (seed.tenant_b, [])])
    res = login(user)
    assert "dct" not in res["sessionToken"]
    selected = client.select_tenant(seed.tenant_a, refresh_jwt(res))
    assert selected["sessionToken"]["dct"] == seed.tenant_a
    valid = client.validate_session(session_jwt(selected))
    assert valid["dct"] == seed.tenant_a
    assert client.validate_tenant_roles(valid, seed.tenant_a, [seed.role_billing])
    # A tenant the user does not belong to cannot be selected.
    with pytest.raises(AuthException) as e:
        client.select_tenant(seed.tenant_sso, refresh_jwt(res))
    assert 400 <= e.value.status_code < 500


# --- me -------------------------------------------------------------------


def test_me(client, seed, make_user, login):
    user = make_user(roles=[seed.role_viewer], tenants=[(seed.tenant_a, [seed.role_billing])])
    me = client.me(refresh_jwt(login(user)))
    assert me["userId"] == user.user_id
    assert me["loginIds"] == [user.login_id]
    assert me["email"] == user.email
    assert me["name"] == user.name
    assert seed.role_viewer in me["roleNames"]
    assert [t["tenantId"] for t in me["userTenants"]] == [seed.tenant_a]


def test_me_without_a_valid_refresh_token_fails(client):
    with pytest.raises(AuthException) as e:
        client.me("not-a-jwt")
    assert 400 <= e.value.status_code < 500


# --- OAuth / SSO ----------------------------------------------------------


def test_oauth_start_consent_page_exchange(client, make_user):
    user = make_user()
    start = client.oauth.start("google", RETURN_URL)
    assert start["url"].startswith("http"), start
    resp = submit_provider_page(start["url"], user)
    code = code_from_redirect(resp, RETURN_URL)
    out = client.oauth.exchange_token(code)
    assert out["userId"] == user.user_id
    assert client.validate_session(session_jwt(out))["userId"] == user.user_id
    # A code is single use.
    with pytest.raises(AuthException):
        client.oauth.exchange_token(code)


def test_oauth_consent_page_signs_up_a_typed_login(client):
    from conftest import User

    login_id = f"{unique('oauthnew')}@example.com"
    start = client.oauth.start("github", RETURN_URL)
    resp = submit_provider_page(start["url"], User(login_id, login_id, "", ""), typed=True)
    out = client.oauth.exchange_token(code_from_redirect(resp, RETURN_URL))
    assert out["user"]["loginIds"] == [login_id]
    assert out["firstSeen"] is True


def test_sso_start_idp_page_exchange(client, seed, make_user):
    user = make_user(roles=[], tenants=[(seed.tenant_sso, [])])
    start = client.sso.start(seed.tenant_sso, RETURN_URL)
    assert start["url"].startswith("http"), start
    resp = submit_provider_page(start["url"], user)
    code = code_from_redirect(resp, RETURN_URL)
    out = client.sso.exchange_token(code)
    assert out["userId"] == user.user_id
    assert seed.tenant_sso in client.validate_session(session_jwt(out))["tenants"]


def test_legacy_saml_start_and_exchange(client, seed, make_user):
    user = make_user(roles=[], tenants=[(seed.tenant_sso, [])])
    start = client.saml.start(seed.tenant_sso, RETURN_URL)
    resp = submit_provider_page(start["url"], user)
    out = client.saml.exchange_token(code_from_redirect(resp, RETURN_URL))
    assert out["userId"] == user.user_id


# --- logout / rotation / cookie mode --------------------------------------


def test_logout_then_refresh_fails(client, make_user, login):
    res = login(make_user())
    client.logout(refresh_jwt(res))
    with pytest.raises(AuthException) as e:
        client.refresh_session(refresh_jwt(res))
    assert e.value.status_code == 401


def test_logout_all_revokes_every_session(client, make_user, login):
    user = make_user()
    first, second = login(user), login(user)
    client.logout_all(refresh_jwt(first))
    for res in (first, second):
        with pytest.raises(AuthException) as e:
            client.refresh_session(refresh_jwt(res))
        assert e.value.status_code == 401


def test_refresh_token_rotation(client, control, make_user, login):
    control.post("rotation", {"enabled": True})
    try:
        res = login(make_user())
        old = refresh_jwt(res)
        rotated = client.refresh_session(old)
        new = refresh_jwt(rotated)
        assert new != old, "rotation on, but the refresh token did not change"
        with pytest.raises(AuthException) as e:
            client.refresh_session(old)
        assert e.value.status_code == 401
        again = client.refresh_session(new)
        assert again["userId"] == res["userId"]
    finally:
        control.post("rotation", {"enabled": False})


def test_cookie_mode_still_yields_sessions(env, client, control, make_user, login):
    verbose = DescopeClient(env.project_id, base_url=env.url, verbose=True)
    # Load the keys first, so that the last response seen below is the verify call's.
    verbose.validate_session(session_jwt(login(make_user())))
    control.post("cookie-mode", {"enabled": True})
    try:
        user = make_user()
        link = client.mgmt.user.generate_magic_link_for_test_user(
            DeliveryMethod.EMAIL, user.login_id, "http://127.0.0.1:9/verify"
        )["link"]
        res = verbose.magiclink.verify(link_token(link))
        raw = verbose.get_last_response().raw
        assert "refreshJwt" not in raw.json(), "cookie mode, but refreshJwt is in the body"
        assert raw.cookies.get("DSR"), f"cookie mode, but no DSR cookie: {raw.headers.get_list('set-cookie')}"
        assert refresh_jwt(res) == raw.cookies.get("DSR")
        assert verbose.validate_session(session_jwt(res))["userId"] == user.user_id
        refreshed = verbose.refresh_session(refresh_jwt(res))
        assert refreshed["userId"] == user.user_id
        assert verbose.me(refresh_jwt(res))["userId"] == user.user_id
    finally:
        control.post("cookie-mode", {"enabled": False})


# --- faults ---------------------------------------------------------------


def test_rate_limit_fault(client, control, make_user, login):
    res = login(make_user())
    control.post("faults", {"path": "/v1/auth/refresh", "type": "rate_limit", "retryAfterSecs": 7, "times": 1})
    try:
        with pytest.raises(RateLimitException) as e:
            client.refresh_session(refresh_jwt(res))
        assert e.value.rate_limit_parameters == {"Retry-After": 7}
        assert e.value.status_code == "E130429"
        # The fault was for one call only.
        assert client.refresh_session(refresh_jwt(res))["userId"] == res["userId"]
    finally:
        control.clear_faults()


def test_status_fault_and_call_counts(client, control, make_user, login):
    res = login(make_user())
    before = control.get("calls", {"path": "/v1/auth/refresh"})["count"]
    control.post("faults", {"path": "/v1/auth/refresh", "type": "status", "status": 500, "times": 1})
    try:
        with pytest.raises(AuthException) as e:
            client.refresh_session(refresh_jwt(res))
        assert e.value.status_code == 500
        assert "errorCode" in json.loads(e.value.error_message)
        client.refresh_session(refresh_jwt(res))
    finally:
        control.clear_faults()
    assert control.get("calls", {"path": "/v1/auth/refresh"})["count"] == before + 2


def test_latency_fault_is_applied(client, control, make_user, login):
    res = login(make_user())
    control.post("faults", {"path": "/v1/auth/refresh", "type": "latency", "millis": 300, "times": 1})
    try:
        t0 = time.monotonic()
        client.refresh_session(refresh_jwt(res))
        assert time.monotonic() - t0 >= 0.3
    finally:
        control.clear_faults()


# --- more sign-in methods -------------------------------------------------


def outbox_for(control, address: str) -> list[dict]:
    entries = control.get("outbox.json")
    entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
    return [e for e in entries if e.get("to") == address]


def test_magic_link_sign_up_or_in_via_outbox(client, control):
    login_id = f"{unique('new')}@example.com"
    masked = client.magiclink.sign_up_or_in(DeliveryMethod.EMAIL, login_id, "http://127.0.0.1:9/verify")
    assert masked and "@" in masked, masked
    links = [e["link"] for e in outbox_for(control, login_id) if e.get("link")]
    assert links, "no magic link in the outbox"
    out = client.magiclink.verify(link_token(links[-1]))
    assert out["user"]["loginIds"] == [login_id]
    assert out["firstSeen"] is True
    # Now the user exists: sign-in works, sign-up does not.
    client.magiclink.sign_in(DeliveryMethod.EMAIL, login_id, "http://127.0.0.1:9/verify")
    with pytest.raises(AuthException):
        client.magiclink.sign_up(DeliveryMethod.EMAIL, login_id, "http://127.0.0.1:9/verify", {"name": "x"})


def test_magic_link_sign_in_unknown_user_fails(client):
    with pytest.raises(AuthException) as e:
        client.magiclink.sign_in(DeliveryMethod.EMAIL, f"{unique('ghost')}@example.com", "http://127.0.0.1:9/v")
    assert 400 <= e.value.status_code < 500


def test_enchanted_link_sign_in_via_outbox(client, control, make_user):
    user = make_user()
    res = client.enchantedlink.sign_in(user.login_id, "http://127.0.0.1:9/verify")
    assert res["pendingRef"] and res["linkId"] and "@" in res["maskedEmail"], res
    links = [e["link"] for e in outbox_for(control, user.email) if e.get("link")]
    assert links, "no enchanted link in the outbox"
    client.enchantedlink.verify(link_token(links[-1]))
    out = client.enchantedlink.get_session(res["pendingRef"])
    assert out["userId"] == user.user_id


def test_otp_sign_up_creates_the_user(client, control):
    login_id = f"{unique('otp')}@example.com"
    client.otp.sign_up(DeliveryMethod.EMAIL, login_id, {"name": "Otp Person"})
    codes = [e["code"] for e in outbox_for(control, login_id) if e.get("code")]
    assert codes, "no OTP code in the outbox"
    out = client.otp.verify_code(DeliveryMethod.EMAIL, login_id, codes[-1])
    assert out["user"]["name"] == "Otp Person"
    assert client.mgmt.user.load(login_id)["user"]["userId"] == out["userId"]


def test_password_sign_up_sign_in_replace(client):
    login_id = f"{unique('pwd')}@example.com"
    up = client.password.sign_up(login_id, "Secr3t-Passw0rd!", {"name": "Pat"})
    assert client.validate_session(session_jwt(up))["userId"] == up["userId"]
    with pytest.raises(AuthException) as e:
        client.password.sign_in(login_id, "wrong-password")
    assert 400 <= e.value.status_code < 500
    assert client.password.sign_in(login_id, "Secr3t-Passw0rd!")["userId"] == up["userId"]
    client.password.replace(login_id, "Secr3t-Passw0rd!", "N3w-Passw0rd!!")
    assert client.password.sign_in(login_id, "N3w-Passw0rd!!")["userId"] == up["userId"]
    policy = client.password.get_policy()
    assert "minLength" in policy, policy


def totp_code(base32_key: str, at: float | None = None) -> str:
    import hashlib
    import hmac
    import struct

    key = base64.b32decode(base32_key.upper() + "=" * (-len(base32_key) % 8))
    counter = int((at if at is not None else time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def test_totp_sign_up_then_sign_in_code(client):
    login_id = f"{unique('totp')}@example.com"
    res = client.totp.sign_up(login_id, {"name": "Toto"})
    assert res["provisioningURL"].startswith("otpauth://totp/"), res
    out = client.totp.sign_in_code(login_id, totp_code(res["key"]))
    assert out["user"]["loginIds"] == [login_id]
    with pytest.raises(AuthException):
        client.totp.sign_in_code(login_id, "000000" if totp_code(res["key"]) != "000000" else "111111")


def test_access_key_exchange(client, seed):
    created = client.mgmt.access_key.create(unique("key"), role_names=[seed.role_viewer])
    cleartext = created["cleartext"]
    key_id = created["key"]["id"]
    out = client.exchange_access_key(cleartext)
    assert out["keyId"] == key_id
    assert client.validate_roles(out, [seed.role_viewer])
    with pytest.raises(AuthException):
        client.exchange_access_key("K-not-a-real-key")


def test_embedded_link_verifies_as_magic_link(client, make_user):
    user = make_user()
    token = client.mgmt.user.generate_embedded_link(user.login_id, {"team": "blue"})
    out = client.magiclink.verify(token)
    assert out["userId"] == user.user_id
    assert out["sessionToken"].get("team") == "blue"


def test_enchanted_link_and_otp_sign_up_or_in(client, control):
    login_id = f"{unique('either')}@example.com"
    res = client.enchantedlink.sign_up_or_in(login_id, "http://127.0.0.1:9/verify")
    links = [e["link"] for e in outbox_for(control, login_id) if e.get("link")]
    assert links, "no enchanted link in the outbox"
    client.enchantedlink.verify(link_token(links[-1]))
    first = client.enchantedlink.get_session(res["pendingRef"])
    assert first["user"]["loginIds"] == [login_id]
    client.otp.sign_up_or_in(DeliveryMethod.EMAIL, login_id)
    codes = [e["code"] for e in outbox_for(control, login_id) if e.get("code")]
    assert codes, "no OTP code in the outbox"
    second = client.otp.verify_code(DeliveryMethod.EMAIL, login_id, codes[-1])
    assert second["userId"] == first["userId"]


def test_password_update_with_refresh_token(client):
    login_id = f"{unique('pwdupd')}@example.com"
    up = client.password.sign_up(login_id, "First-Passw0rd!", {})
    client.password.update(login_id, "Second-Passw0rd!", refresh_jwt(up))
    assert client.password.sign_in(login_id, "Second-Passw0rd!")["userId"] == up["userId"]
    with pytest.raises(AuthException):
        client.password.sign_in(login_id, "First-Passw0rd!")


def test_management_create_update_deactivate_user(client, seed, control):
    login_id = f"{unique('plain')}@example.com"
    created = client.mgmt.user.create(login_id, email=login_id, display_name="Plain User", role_names=[seed.role_viewer])
    user_id = created["user"]["userId"]
    assert created["user"]["test"] is False
    client.mgmt.user.update(login_id, email=login_id, display_name="Updated User", role_names=[seed.role_editor])
    loaded = client.mgmt.user.load(login_id)["user"]
    assert loaded["name"] == "Updated User" and loaded["roleNames"] == [seed.role_editor]
    found = client.mgmt.user.search_all(emails=[login_id])["users"]
    assert [u["userId"] for u in found] == [user_id]
    client.magiclink.sign_in(DeliveryMethod.EMAIL, login_id, "http://127.0.0.1:9/verify")
    client.mgmt.user.deactivate(login_id)
    assert client.mgmt.user.load(login_id)["user"]["status"] == "disabled"
    # A disabled user gets no session: refused at sign-in or at verify.
    with pytest.raises(AuthException):
        client.magiclink.sign_in(DeliveryMethod.EMAIL, login_id, "http://127.0.0.1:9/verify")
        link = [e["link"] for e in outbox_for(control, login_id) if e.get("link")][-1]
        client.magiclink.verify(link_token(link))
    client.mgmt.user.activate(login_id)
    client.magiclink.sign_in(DeliveryMethod.EMAIL, login_id, "http://127.0.0.1:9/verify")
    link = [e["link"] for e in outbox_for(control, login_id) if e.get("link")][-1]
    assert client.magiclink.verify(link_token(link))["userId"] == user_id


def test_management_updates_and_deletes_tenants_roles_permissions(client):
    perm, role, tenant = unique("perm"), unique("role"), unique("T")
    client.mgmt.permission.create(perm, "p")
    client.mgmt.permission.update(perm, perm + "-2", "p2")
    client.mgmt.role.create(role, "r", [perm + "-2"])
    client.mgmt.role.update(role, role + "-2", "r2", [perm + "-2"])
    roles = {r["name"] for r in client.mgmt.role.load_all()["roles"]}
    assert role + "-2" in roles and role not in roles
    client.mgmt.tenant.create("Before", id=tenant)
    client.mgmt.tenant.update(tenant, "After")
    assert client.mgmt.tenant.load(tenant)["name"] == "After"
    client.mgmt.tenant.delete(tenant)
    client.mgmt.role.delete(role + "-2")
    client.mgmt.permission.delete(perm + "-2")
    assert tenant not in {t["id"] for t in client.mgmt.tenant.load_all()["tenants"]}
    assert role + "-2" not in {r["name"] for r in client.mgmt.role.load_all()["roles"]}
    assert perm + "-2" not in {p["name"] for p in client.mgmt.permission.load_all()["permissions"]}


# --- more session endpoints -----------------------------------------------


def test_my_tenants_and_history(client, seed, make_user, login):
    user = make_user(roles=[], tenants=[(seed.tenant_a, []), (seed.tenant_b, [])])
    res = login(user)
    mine = client.my_tenants(refresh_jwt(res), ids=[seed.tenant_a])
    assert [t["id"] for t in mine["tenants"]] == [seed.tenant_a]
    selected = client.select_tenant(seed.tenant_b, refresh_jwt(res))
    current = client.my_tenants(refresh_jwt(selected), dct=True)
    assert [t["id"] for t in current["tenants"]] == [seed.tenant_b]
    history = client.history(refresh_jwt(res))
    assert isinstance(history, list)


def test_management_logout_user_revokes_refresh(client, make_user, login):
    user = make_user()
    res = login(user)
    client.mgmt.user.logout_user(user.login_id)
    with pytest.raises(AuthException) as e:
        client.refresh_session(refresh_jwt(res))
    assert e.value.status_code == 401


def test_refresh_reflects_role_changes(client, seed, make_user, login):
    user = make_user(roles=[seed.role_viewer])
    res = login(user)
    assert not client.validate_roles(res, [seed.role_editor])
    client.mgmt.user.add_roles(user.login_id, [seed.role_editor])
    refreshed = client.refresh_session(refresh_jwt(res))
    assert client.validate_roles(refreshed, [seed.role_editor])
    assert client.validate_permissions(refreshed, [seed.perm_write])


def test_deleted_user_cannot_refresh(client, make_user, login):
    user = make_user()
    res = login(user)
    client.mgmt.user.delete(user.login_id)
    with pytest.raises(AuthException) as e:
        client.refresh_session(refresh_jwt(res))
    assert 400 <= e.value.status_code < 500


def test_sdk_retries_a_503_once(client, control, make_user, login):
    res = login(make_user())
    before = control.get("calls", {"path": "/v1/auth/refresh"})["count"]
    control.post("faults", {"path": "/v1/auth/refresh", "type": "status", "status": 503, "times": 1})
    try:
        assert client.refresh_session(refresh_jwt(res))["userId"] == res["userId"]
    finally:
        control.clear_faults()
    assert control.get("calls", {"path": "/v1/auth/refresh"})["count"] == before + 2


def test_dropped_connection_surfaces_as_an_error(client, control, make_user, login):
    res = login(make_user())
    control.post("faults", {"path": "/v1/auth/refresh", "type": "drop", "times": 1})
    try:
        with pytest.raises(Exception) as e:
            client.refresh_session(refresh_jwt(res))
        assert not isinstance(e.value, AssertionError)
    finally:
        control.clear_faults()
    assert client.refresh_session(refresh_jwt(res))["userId"] == res["userId"]


def test_control_api_requires_the_token(env):
    r = httpx.post(f"{env.url}/emulator/mint", json={"sub": "U1"})
    assert r.status_code == 401
    r = httpx.post(
        f"{env.url}/emulator/mint", json={"sub": "U1"}, headers={"Authorization": "Bearer wrong"}
    )
    assert r.status_code == 401


# --- start-up options -----------------------------------------------------

SEED = """
[[permissions]]
name = "invoices:read"
description = "Read invoices"

[[roles]]
name = "admin"
permissions = ["invoices:read"]

[[roles]]
name = "member"

[[tenants]]
id = "T-acme"
name = "Acme"
sso = true
domains = ["acme.example.com"]

[[users]]
login_id = "alice@example.com"
user_id = "U-alice"
name = "Alice Example"
roles = ["admin"]
password = "correct horse"
tenants = [{ id = "T-acme", roles = ["member"] }]
claims = { department = "eng" }

[[users]]
login_id = "tess@example.com"
test = true

[[access_keys]]
key = "K-ci-secret"
id = "K-ci"
roles = ["admin"]
"""


def test_seed_file_as_documented(tmp_path, env):
    from conftest import SpawnedEmulator, User

    seed_file = tmp_path / "seed.toml"
    seed_file.write_text(SEED)
    with SpawnedEmulator("--seed", str(seed_file), key_type=env.key_type) as emu:
        c = DescopeClient(emu.project_id, management_key=emu.management_key, base_url=emu.url)
        alice = c.mgmt.user.load("alice@example.com")["user"]
        assert alice["userId"] == "U-alice" and alice["name"] == "Alice Example"
        assert alice["email"] == "alice@example.com"
        res = c.password.sign_in("alice@example.com", "correct horse")
        assert res["userId"] == "U-alice"
        assert c.validate_roles(res, ["admin"]) and c.validate_permissions(res, ["invoices:read"])
        assert c.validate_tenant_roles(res, "T-acme", ["member"])
        assert res["sessionToken"]["department"] == "eng"
        # Only the seeded test user is served by the test-user helpers.
        link = c.mgmt.user.generate_magic_link_for_test_user(DeliveryMethod.EMAIL, "tess@example.com", RETURN_URL)
        assert c.magiclink.verify(link_token(link["link"]))["user"]["loginIds"] == ["tess@example.com"]
        with pytest.raises(AuthException):
            c.mgmt.user.generate_otp_for_test_user(DeliveryMethod.EMAIL, "alice@example.com")
        key = c.exchange_access_key("K-ci-secret")
        assert key["keyId"] == "K-ci" and c.validate_roles(key, ["admin"])
        # The seeded SSO tenant is found by its self-provisioning domain too.
        start = c.sso.start("bob@acme.example.com", RETURN_URL)
        resp = submit_provider_page(start["url"], User("alice@example.com", "alice@example.com", "U-alice", ""))
        assert c.sso.exchange_token(code_from_redirect(resp, RETURN_URL))["userId"] == "U-alice"


def test_issuer_project_id_mode(env):
    from conftest import SpawnedEmulator

    with SpawnedEmulator("--issuer-project-id", key_type=env.key_type) as emu:
        token = httpx.post(
            f"{emu.url}/emulator/mint",
            json={"sub": "U-x"},
            headers={"Authorization": f"Bearer {emu.control_token}"},
        ).json()["token"]
        c = DescopeClient(emu.project_id, base_url=emu.url)
        res = c.validate_session(token)
        assert res["iss"] == emu.project_id and res["projectId"] == emu.project_id


# --- access keys: management and exchange -----------------------------------


def test_access_key_management_round_trip(client, seed):
    from descope import AccessKeyLoginOptions, AssociatedTenant

    expire = int(time.time()) + 3600
    created = client.mgmt.access_key.create(
        unique("svc"),
        expire_time=expire,
        role_names=[seed.role_viewer],
        key_tenants=[AssociatedTenant(seed.tenant_a, [seed.role_billing])],
        custom_claims={"service": "billing"},
        description="nightly export",
        permitted_ips=["127.0.0.0/8", "::1"],
        custom_attributes={"team": "ops"},
    )
    key = created["key"]
    assert key["status"] == "active"
    assert key["expireTime"] == expire
    loaded = client.mgmt.access_key.load(key["id"])["key"]
    assert loaded["name"] == key["name"]
    assert loaded["description"] == "nightly export"
    assert loaded["permittedIps"] == ["127.0.0.0/8", "::1"]
    assert [t["tenantId"] for t in loaded["keyTenants"]] == [seed.tenant_a]
    found = client.mgmt.access_key.search_all_access_keys(tenant_ids=[seed.tenant_a])["keys"]
    assert key["id"] in [k["id"] for k in found]

    out = client.exchange_access_key(
        created["cleartext"], login_options=AccessKeyLoginOptions(custom_claims={"run": 7})
    )
    assert out["keyId"] == key["id"]
    assert client.validate_roles(out, [seed.role_viewer])
    assert client.validate_tenant_roles(out, seed.tenant_a, [seed.role_billing])
    token = out["sessionToken"]
    assert token["service"] == "billing"
    assert token["run"] == 7
    assert token["exp"] <= expire

    client.mgmt.access_key.update(key["id"], "renamed", custom_claims={"service": "ledger"})
    loaded = client.mgmt.access_key.load(key["id"])["key"]
    assert loaded["name"] == "renamed"
    assert loaded["description"] == "nightly export", "fields not given keep their value"
    assert client.exchange_access_key(created["cleartext"])["sessionToken"]["service"] == "ledger"


def test_deactivated_deleted_expired_and_ip_fenced_keys_fail_to_exchange(client, seed):
    created = client.mgmt.access_key.create(unique("svc"), role_names=[seed.role_viewer])
    key_id, cleartext = created["key"]["id"], created["cleartext"]
    client.exchange_access_key(cleartext)
    client.mgmt.access_key.deactivate(key_id)
    assert client.mgmt.access_key.load(key_id)["key"]["status"] == "inactive"
    with pytest.raises(AuthException) as e:
        client.exchange_access_key(cleartext)
    assert e.value.status_code == 401
    client.mgmt.access_key.activate(key_id)
    assert client.exchange_access_key(cleartext)["keyId"] == key_id
    client.mgmt.access_key.delete(key_id)
    with pytest.raises(AuthException) as e:
        client.exchange_access_key(cleartext)
    assert e.value.status_code == 401
    with pytest.raises(AuthException):
        client.mgmt.access_key.load(key_id)

    expired = client.mgmt.access_key.create(unique("old"), expire_time=int(time.time()) - 5)
    with pytest.raises(AuthException) as e:
        client.exchange_access_key(expired["cleartext"])
    assert e.value.status_code == 401

    # The emulator sees this test from 127.0.0.1: outside 10.0.0.0/8.
    fenced = client.mgmt.access_key.create(unique("fenced"), permitted_ips=["10.0.0.0/8"])
    with pytest.raises(AuthException) as e:
        client.exchange_access_key(fenced["cleartext"])
    assert e.value.status_code == 401
    client.mgmt.access_key.update(fenced["key"]["id"], fenced["key"]["name"], permitted_ips=["127.0.0.1"])
    assert client.exchange_access_key(fenced["cleartext"])["keyId"] == fenced["key"]["id"]


def test_access_key_exchanges_are_counted(client, control):
    created = client.mgmt.access_key.create(unique("counted"))
    before = control.get("calls", {"path": "/v1/auth/accesskey/exchange"})["count"]
    client.exchange_access_key(created["cleartext"])
    with pytest.raises(AuthException):
        client.exchange_access_key("K-not-a-real-key")
    after = control.get("calls", {"path": "/v1/auth/accesskey/exchange"})["count"]
    assert after == before + 2


# --- SSO settings through the management API --------------------------------


def _new_tenant(client) -> str:
    tid = unique("TCFG")
    client.mgmt.tenant.create(f"Tenant {tid}", id=tid)
    return tid


def test_saml_settings_make_a_tenant_an_sso_tenant_until_deleted(client, seed, make_user):
    from descope import AttributeMapping, RoleMapping, SSOSAMLSettings

    tid = _new_tenant(client)
    with pytest.raises(AuthException):
        client.sso.start(tid, RETURN_URL)
    assert client.mgmt.sso.load_settings(tid)["tenant"]["authType"] == "none"
    client.mgmt.sso.configure_saml_settings(
        tid,
        SSOSAMLSettings(
            idp_url="https://idp.example.test/sso",
            idp_entity_id="urn:example:idp",
            idp_cert="MIIC-not-a-real-cert",
            attribute_mapping=AttributeMapping(email="mail", name="displayName"),
            role_mappings=[RoleMapping(["eng"], seed.role_editor)],
            default_sso_roles=[seed.role_viewer],
        ),
        redirect_url=RETURN_URL,
        domains=[f"{tid.lower()}.test"],
    )
    settings = client.mgmt.sso.load_settings(tid)
    assert settings["tenant"]["authType"] == "saml"
    assert settings["tenant"]["domains"] == [f"{tid.lower()}.test"]
    saml = settings["saml"]
    assert saml["idpSSOUrl"] == "https://idp.example.test/sso"
    assert saml["idpEntityId"] == "urn:example:idp"
    assert saml["idpCertificate"] == "MIIC-not-a-real-cert"
    assert saml["attributeMapping"]["email"] == "mail"
    assert saml["redirectUrl"] == RETURN_URL

    user = make_user(roles=[], tenants=[(tid, [])])
    start = client.sso.start(tid, RETURN_URL)
    code = code_from_redirect(submit_provider_page(start["url"], user), RETURN_URL)
    out = client.sso.exchange_token(code)
    assert out["userId"] == user.user_id
    assert tid in client.validate_session(session_jwt(out))["tenants"]

    client.mgmt.sso.delete_settings(tid)
    assert client.mgmt.sso.load_settings(tid)["tenant"]["authType"] == "none"
    with pytest.raises(AuthException):
        client.sso.start(tid, RETURN_URL)


def test_saml_by_metadata_and_oidc_settings_load_back(client):
    from descope import OIDCAttributeMapping, SSOOIDCSettings, SSOSAMLSettingsByMetadata

    meta = _new_tenant(client)
    client.mgmt.sso.configure_saml_settings_by_metadata(
        meta, SSOSAMLSettingsByMetadata(idp_metadata_url="https://idp.example.test/metadata")
    )
    settings = client.mgmt.sso.load_settings(meta)
    assert settings["tenant"]["authType"] == "saml"
    assert settings["saml"]["idpMetadataUrl"] == "https://idp.example.test/metadata"
    assert client.sso.start(meta, RETURN_URL)["url"].startswith("http")

    oidc = _new_tenant(client)
    client.mgmt.sso.configure_oidc_settings(
        oidc,
        SSOOIDCSettings(
            name="Okta",
            client_id="client-123",
            client_secret="shh",
            auth_url="https://okta.example.test/authorize",
            scope=["openid", "email"],
            attribute_mapping=OIDCAttributeMapping(
                login_id="sub", name="name", given_name="", middle_name="", family_name="",
                email="email", verified_email="email_verified", username="", phone_number="",
                verified_phone="", picture="",
            ),
        ),
        domains=[f"{oidc.lower()}.test"],
    )
    settings = client.mgmt.sso.load_settings(oidc)
    assert settings["tenant"]["authType"] == "oidc"
    assert settings["oidc"]["name"] == "Okta"
    assert settings["oidc"]["clientId"] == "client-123"
    assert settings["oidc"]["scope"] == ["openid", "email"]
    assert settings["oidc"]["userAttrMapping"]["loginId"] == "sub"
    # Started by an email of the SSO domain.
    assert client.sso.start(f"someone@{oidc.lower()}.test", RETURN_URL)["url"].startswith("http")


def test_sso_settings_of_an_unknown_tenant_are_an_error(client):
    with pytest.raises(AuthException) as e:
        client.mgmt.sso.load_settings(unique("TNONE"))
    assert 400 <= e.value.status_code < 500


# --- flows -------------------------------------------------------------------


def test_management_lists_the_flows(client):
    flows = client.mgmt.flow.list_flows()
    assert {"sign-in", "sign-up-or-in"} <= {f["id"] for f in flows["flows"]}
    assert flows["total"] >= 2
