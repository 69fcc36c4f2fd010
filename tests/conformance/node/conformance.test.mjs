// The official Node SDK (@descope/node-sdk@2.13.0) against the Portcullis
// Descope-API emulator: one test per case of the conformance list
// (docs/emulator.md). Started by tests/conformance/run, which passes
// EMULATOR_URL, EMULATOR_PROJECT_ID, EMULATOR_MANAGEMENT_KEY,
// EMULATOR_CONTROL_TOKEN and EMULATOR_KEY_TYPE.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import DescopeClient from '@descope/node-sdk';

const env = {
  url: (process.env.EMULATOR_URL || '').replace(/\/$/, ''),
  projectId: process.env.EMULATOR_PROJECT_ID,
  managementKey: process.env.EMULATOR_MANAGEMENT_KEY,
  controlToken: process.env.EMULATOR_CONTROL_TOKEN,
  keyType: process.env.EMULATOR_KEY_TYPE || 'ec',
};
if (!env.url || !env.projectId || !env.managementKey || !env.controlToken) {
  throw new Error('run through tests/conformance/run (EMULATOR_* variables missing)');
}

const RETURN_URL = 'http://127.0.0.1:9/callback';
const VERIFY_URL = 'http://127.0.0.1:9/verify';

// Auth + management client, as an application builds it.
const client = DescopeClient({
  projectId: env.projectId,
  baseUrl: env.url,
  managementKey: env.managementKey,
});
const mgmt = client.management;

const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 10)}`;

// Management results come back as {ok, data, error}; fail loudly when not ok.
function ok(res, what) {
  assert.ok(res && res.ok, `${what}: ${JSON.stringify(res && res.error)}`);
  return res.data;
}

// --- control API (plain HTTP) ----------------------------------------------
async function control(method, path, body) {
  const r = await fetch(`${env.url}/emulator/${path}`, {
    method,
    headers: { Authorization: `Bearer ${env.controlToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `control ${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : {};
}
const ctl = {
  post: (path, body = {}) => control('POST', path, body),
  get: (path) => control('GET', path),
  clearFaults: () => control('DELETE', 'faults'),
};

// --- seeding through the management API ------------------------------------
const seed = {
  permRead: unique('docs.read'),
  permWrite: unique('docs.write'),
  permBilling: unique('billing.read'),
  roleViewer: unique('viewer'),
  roleEditor: unique('editor'),
  roleBilling: unique('billing-admin'),
  tenantA: unique('TA'),
  tenantB: unique('TB'),
  tenantSso: unique('TSSO'),
};

before(async () => {
  ok(await mgmt.permission.create(seed.permRead, 'read documents'), 'permission.create');
  ok(await mgmt.permission.create(seed.permWrite, 'write documents'), 'permission.create');
  ok(await mgmt.permission.create(seed.permBilling, 'read invoices'), 'permission.create');
  ok(await mgmt.role.create(seed.roleViewer, 'reader', [seed.permRead]), 'role.create');
  ok(await mgmt.role.create(seed.roleEditor, 'writer', [seed.permRead, seed.permWrite]), 'role.create');
  ok(await mgmt.role.create(seed.roleBilling, 'billing', [seed.permBilling]), 'role.create');
  for (const id of [seed.tenantA, seed.tenantB, seed.tenantSso]) {
    // The emulator's IdP page serves tenants created with enforceSSO.
    const created = ok(await mgmt.tenant.createWithId(id, `Tenant ${id}`, undefined, undefined, id === seed.tenantSso), 'tenant.createWithId');
    assert.equal(created.id, id);
  }
});

// Creates a test user via management.user.createTestUser.
async function makeUser({ roles = [seed.roleViewer], tenants = [], name } = {}) {
  const loginId = `${unique('user')}@example.com`;
  const displayName = name || `Test ${loginId.split('@')[0]}`;
  const user = ok(
    await mgmt.user.createTestUser(loginId, {
      email: loginId,
      displayName,
      roles,
      userTenants: tenants.map(([tenantId, roleNames]) => ({ tenantId, roleNames })),
      verifiedEmail: true,
    }),
    'user.createTestUser',
  );
  assert.ok(user.loginIds.includes(loginId), JSON.stringify(user));
  return { loginId, email: loginId, userId: user.userId, name: displayName };
}

function linkToken(link) {
  const t = new URL(link).searchParams.get('t');
  assert.ok(t, `no t= in ${link}`);
  return t;
}

// Signs in through a test-user magic link; returns the verify data {sessionJwt, refreshJwt, cookies, ...}.
async function login(user) {
  const { link } = ok(
    await mgmt.user.generateMagicLinkForTestUser('email', user.loginId, VERIFY_URL),
    'generateMagicLinkForTestUser',
  );
  return ok(await client.magicLink.verify(linkToken(link)), 'magicLink.verify');
}

function jwtHeader(token) {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString());
}

async function rejects(promise, pattern) {
  await assert.rejects(promise, (e) => {
    if (pattern) assert.match(String(e && e.message), pattern);
    return true;
  });
}

// --- hosted provider pages (plain HTTP, like a browser) --------------------
function parseForms(html) {
  const forms = [];
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  const attr = (s, name) => {
    const m = s.match(new RegExp(`\\b${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
    return m ? decode(m[2] ?? m[3] ?? m[4] ?? '') : undefined;
  };
  for (const m of html.matchAll(formRe)) {
    const form = { action: attr(m[1], 'action') || '', method: (attr(m[1], 'method') || 'get').toLowerCase(), hidden: {}, choices: [], text: [] };
    for (const c of m[2].matchAll(/<(input|button|option|select)\b([^>]*)>/gi)) {
      const tag = c[1].toLowerCase();
      const a = c[2];
      const name = attr(a, 'name');
      const value = attr(a, 'value') ?? '';
      if (tag === 'select') { form.select = name; continue; }
      const attrValues = [...a.matchAll(/[\w-]+\s*=\s*("([^"]*)"|'([^']*)')/g)].map((x) => decode(x[2] ?? x[3] ?? ''));
      if (tag === 'option') { if (form.select) form.choices.push([form.select, value, attrValues]); continue; }
      const type = (attr(a, 'type') || (tag === 'button' ? 'submit' : 'text')).toLowerCase();
      if (['radio', 'submit', 'checkbox'].includes(type)) { form.choices.push([name, value, attrValues]); continue; }
      if (!name) continue;
      if (type === 'hidden') form.hidden[name] = value;
      else form.text.push([name, value]);
    }
    forms.push(form);
  }
  return forms;
}

function decode(s) {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

// Fetches the provider page and submits its form for `user`; returns the unfollowed response.
async function submitProviderPage(pageUrl, user, typed = false) {
  let url = pageUrl;
  let page = await fetch(url, { redirect: 'manual' });
  for (let hops = 0; page.status >= 300 && page.status < 400 && hops < 5; hops++) {
    url = new URL(page.headers.get('location'), url).toString();
    page = await fetch(url, { redirect: 'manual' });
  }
  const html = await page.text();
  assert.equal(page.status, 200, `${pageUrl}: ${page.status} ${html.slice(0, 300)}`);
  assert.match(page.headers.get('content-type') || '', /text\/html/);
  const forms = parseForms(html);
  assert.ok(forms.length, `no form on the provider page:\n${html.slice(0, 1000)}`);
  const wanted = new Set([user.loginId, user.userId, user.email]);
  const send = (form, fields) => {
    const action = new URL(form.action || url, url);
    const params = new URLSearchParams(fields);
    if (form.method === 'post') {
      return fetch(action, { method: 'POST', redirect: 'manual', body: params, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    }
    for (const [k, v] of params) action.searchParams.set(k, v);
    return fetch(action, { redirect: 'manual' });
  };
  if (!typed) {
    // The form that names this user: the "pick this account" button a person clicks.
    for (const form of forms) {
      const fields = { ...form.hidden };
      if (Object.values(form.hidden).some((v) => wanted.has(v))) return send(form, fields);
      for (const [name, value, attrs] of form.choices) {
        if (name && wanted.has(value)) return send(form, { ...fields, [name]: value });
        if (attrs.some((v) => wanted.has(v))) return send(form, fields);
      }
    }
  } else {
    // Typing the login id into the free-text form.
    for (const form of forms) {
      for (const [name] of form.text) {
        if (/login|email|user/i.test(name)) return send(form, { ...form.hidden, [name]: user.loginId });
      }
    }
  }
  throw new Error(`no form on the provider page offers ${user.loginId}:\n${html.slice(0, 2000)}`);
}

function codeFromRedirect(resp, returnUrl) {
  assert.ok(resp.status >= 300 && resp.status < 400, `expected a redirect, got ${resp.status}`);
  const location = resp.headers.get('location');
  assert.ok(location.startsWith(returnUrl), `redirect to ${location}, not to ${returnUrl}`);
  const code = new URL(location).searchParams.get('code');
  assert.ok(code, `no code in ${location}`);
  return code;
}

// --- keys ------------------------------------------------------------------
test('JWKS has the configured key type and verifies sessions', async () => {
  const { keys } = await (await fetch(`${env.url}/v2/keys/${env.projectId}`)).json();
  assert.ok(keys.length > 0, 'empty JWKS');
  const wantKty = { ec: 'EC', rsa: 'RSA' }[env.keyType];
  for (const k of keys) {
    assert.equal(k.kty, wantKty);
    assert.ok(k.kid && k.alg, JSON.stringify(k));
    assert.equal(k.d, undefined, 'private key material in the JWKS');
  }
  const user = await makeUser();
  const res = await login(user);
  const header = jwtHeader(res.sessionJwt);
  assert.ok(keys.some((k) => k.kid === header.kid));
  assert.ok(header.alg.startsWith({ ec: 'ES', rsa: 'RS' }[env.keyType]), header.alg);
  const fresh = DescopeClient({ projectId: env.projectId, baseUrl: env.url });
  const info = await fresh.validateSession(res.sessionJwt);
  assert.equal(info.token.sub, user.userId);
  // node enforces iss (last or second-to-last path segment = project id) and rewrites it.
  assert.equal(info.token.iss, env.projectId);
});

test('a rotated key is fetched on an unknown kid', async () => {
  const user = await makeUser();
  const before = await login(user);
  await client.validateSession(before.sessionJwt); // warms the key cache
  const { kid } = await ctl.post('rotate-keys', {});
  const after = await login(user);
  assert.equal(jwtHeader(after.sessionJwt).kid, kid);
  assert.equal((await client.validateSession(after.sessionJwt)).token.sub, user.userId);
  assert.equal((await client.validateSession(before.sessionJwt)).token.sub, user.userId);
});

// --- management ------------------------------------------------------------
test('management rejects a wrong key', async () => {
  const bad = DescopeClient({ projectId: env.projectId, baseUrl: env.url, managementKey: 'not-the-key' });
  const res = await bad.management.user.createTestUser(`${unique('nobody')}@example.com`, {});
  assert.equal(res.ok, false);
  assert.ok([401, 403].includes(res.code), `status ${res.code}`);
});

test('management loads a created user', async () => {
  const user = await makeUser({ roles: [seed.roleEditor], tenants: [[seed.tenantA, [seed.roleBilling]]] });
  const loaded = ok(await mgmt.user.load(user.loginId), 'user.load');
  assert.equal(loaded.userId, user.userId);
  assert.equal(loaded.email, user.email);
  assert.ok(loaded.roleNames.includes(seed.roleEditor));
  assert.deepEqual(loaded.userTenants.map((t) => t.tenantId), [seed.tenantA]);
});

test('management reads back tenants, roles, permissions', async () => {
  const tenants = ok(await mgmt.tenant.loadAll(), 'tenant.loadAll');
  const ids = tenants.map((t) => t.id);
  for (const id of [seed.tenantA, seed.tenantB, seed.tenantSso]) assert.ok(ids.includes(id), id);
  assert.equal(ok(await mgmt.tenant.load(seed.tenantB), 'tenant.load').id, seed.tenantB);
  const roles = ok(await mgmt.role.loadAll(), 'role.loadAll');
  const editor = roles.find((r) => r.name === seed.roleEditor);
  assert.deepEqual([...editor.permissionNames].sort(), [seed.permRead, seed.permWrite].sort());
  const perms = ok(await mgmt.permission.loadAll(), 'permission.loadAll').map((p) => p.name);
  for (const p of [seed.permRead, seed.permWrite, seed.permBilling]) assert.ok(perms.includes(p), p);
});

test('management updates and searches users', async () => {
  const user = await makeUser({ roles: [seed.roleViewer] });
  ok(await mgmt.user.updateDisplayName(user.loginId, 'Renamed Person'), 'updateDisplayName');
  ok(await mgmt.user.addTenant(user.loginId, seed.tenantB), 'addTenant');
  ok(await mgmt.user.setRoles(user.loginId, [seed.roleEditor]), 'setRoles');
  const loaded = ok(await mgmt.user.load(user.loginId), 'user.load');
  assert.equal(loaded.name, 'Renamed Person');
  assert.deepEqual(loaded.roleNames, [seed.roleEditor]);
  assert.ok(loaded.userTenants.some((t) => t.tenantId === seed.tenantB));
  const found = ok(await mgmt.user.searchTestUsers({ emails: [user.email] }), 'searchTestUsers');
  assert.deepEqual(found.users.map((u) => u.userId), [user.userId]);
  ok(await mgmt.user.removeTenant(user.loginId, seed.tenantB), 'removeTenant');
  const again = ok(await mgmt.user.loadByUserId(user.userId), 'loadByUserId');
  assert.ok(!again.userTenants.some((t) => t.tenantId === seed.tenantB));
});

// --- magic link ------------------------------------------------------------
test('magic link for a test user, then magicLink.verify', async () => {
  const user = await makeUser();
  const { link } = ok(await mgmt.user.generateMagicLinkForTestUser('email', user.loginId, VERIFY_URL), 'generate');
  assert.ok(link.startsWith(VERIFY_URL), link);
  const token = linkToken(link);
  const res = await client.magicLink.verify(token);
  assert.ok(res.ok, JSON.stringify(res.error));
  assert.ok(res.data.sessionJwt && res.data.refreshJwt);
  assert.ok(res.data.cookies.some((c) => c.startsWith('DSR=')), 'withCookie did not synthesise DSR');
  assert.deepEqual(res.data.user.loginIds, [user.loginId]);
  assert.equal((await client.validateSession(res.data.sessionJwt)).token.sub, user.userId);
  const again = await client.magicLink.verify(token);
  assert.equal(again.ok, false, 'a magic-link token must be single use');
  assert.ok(again.code >= 400 && again.code < 500, `status ${again.code}`);
});

test('test-user helpers refuse ordinary users', async () => {
  const loginId = `${unique('real')}@example.com`;
  ok(await mgmt.user.create(loginId, { email: loginId }), 'user.create');
  const link = await mgmt.user.generateMagicLinkForTestUser('email', loginId, VERIFY_URL);
  assert.equal(link.ok, false);
  assert.ok(link.code >= 400 && link.code < 500, `status ${link.code}`);
  assert.equal((await mgmt.user.generateOTPForTestUser('email', loginId)).ok, false);
  assert.equal((await mgmt.user.generateEnchantedLinkForTestUser(loginId, VERIFY_URL)).ok, false);
});

// --- OTP -------------------------------------------------------------------
test('OTP for a test user, wrong code fails, right code verifies', async () => {
  const user = await makeUser();
  const { code } = ok(await mgmt.user.generateOTPForTestUser('email', user.loginId), 'generateOTPForTestUser');
  assert.match(code, /^\d+$/);
  const wrong = await client.otp.verify.email(user.loginId, code === '000000' ? '111111' : '000000');
  assert.equal(wrong.ok, false);
  assert.equal(wrong.error.errorCode, DescopeClient.DescopeErrors.wrongOTPCode);
  const right = await client.otp.verify.email(user.loginId, code);
  assert.ok(right.ok, JSON.stringify(right.error));
  assert.equal((await client.validateSession(right.data.sessionJwt)).token.sub, user.userId);
});

test('OTP: too many wrong codes burn the code (E061103)', async () => {
  const user = await makeUser();
  const { code } = ok(await mgmt.user.generateOTPForTestUser('email', user.loginId), 'generateOTPForTestUser');
  const wrong = code === '000000' ? '111111' : '000000';
  let last;
  for (let i = 0; i < 5; i++) last = await client.otp.verify.email(user.loginId, wrong);
  assert.equal(last.error.errorCode, DescopeClient.DescopeErrors.tooManyOTPAttempts);
  assert.equal((await client.otp.verify.email(user.loginId, code)).ok, false);
});

// --- enchanted link --------------------------------------------------------
test('enchanted link: pending (401 E062503), verify, session', async () => {
  const user = await makeUser();
  const gen = ok(await mgmt.user.generateEnchantedLinkForTestUser(user.loginId, VERIFY_URL), 'generateEnchantedLinkForTestUser');
  assert.ok(gen.pendingRef && gen.link);
  // The SDK's own HTTP client, unwrapped, shows the pending answer.
  const pending = await client.httpClient.post('/v1/auth/enchantedlink/pending-session', { pendingRef: gen.pendingRef });
  assert.equal(pending.status, 401);
  assert.equal((await pending.json()).errorCode, 'E062503');
  const verified = await client.enchantedLink.verify(linkToken(gen.link));
  assert.ok(verified.ok, JSON.stringify(verified.error));
  const session = await client.enchantedLink.waitForSession(gen.pendingRef, { pollingIntervalMs: 1000, timeoutMs: 10000 });
  assert.ok(session.ok, JSON.stringify(session.error));
  assert.equal((await client.validateSession(session.data.sessionJwt)).token.sub, user.userId);
});

// --- validate / refresh ----------------------------------------------------
test('validateSession, refreshSession, validateAndRefreshSession', async () => {
  const user = await makeUser();
  const res = await login(user);
  const valid = await client.validateSession(res.sessionJwt);
  assert.equal(valid.token.sub, user.userId);
  assert.equal(valid.token.drn, 'DS');

  const refreshed = await client.refreshSession(res.refreshJwt);
  assert.equal(refreshed.token.sub, user.userId);
  assert.equal(refreshed.token.drn, 'DS');

  const same = await client.validateAndRefreshSession(res.sessionJwt, res.refreshJwt);
  assert.equal(same.jwt, res.sessionJwt);

  const { token: expired } = await ctl.post('mint', { sub: user.userId, ttlSecs: -120 });
  await rejects(client.validateSession(expired), /session validation failed/);
  const renewed = await client.validateAndRefreshSession(expired, res.refreshJwt);
  assert.equal(renewed.token.sub, user.userId);
  assert.notEqual(renewed.jwt, expired);
});

test('refreshSession with a garbage token fails', async () => {
  await rejects(client.refreshSession('not-a-jwt'));
});

// --- roles / permissions / tenants -----------------------------------------
test('validateRoles and validatePermissions', async () => {
  const user = await makeUser({ roles: [seed.roleEditor], tenants: [[seed.tenantA, [seed.roleBilling]]] });
  const info = await client.validateSession((await login(user)).sessionJwt);
  assert.equal(client.validateRoles(info, [seed.roleEditor]), true);
  assert.equal(client.validateRoles(info, [seed.roleEditor, seed.roleBilling]), false);
  assert.equal(client.validateRoles(info, ['no-such-role']), false);
  assert.equal(client.validatePermissions(info, [seed.permRead, seed.permWrite]), true);
  assert.equal(client.validatePermissions(info, [seed.permBilling]), false);
});

test('validateTenantRoles and validateTenantPermissions', async () => {
  const user = await makeUser({ roles: [], tenants: [[seed.tenantA, [seed.roleBilling]], [seed.tenantB, []]] });
  const info = await client.validateSession((await login(user)).sessionJwt);
  assert.deepEqual(Object.keys(info.token.tenants).sort(), [seed.tenantA, seed.tenantB].sort());
  assert.equal(client.validateTenantRoles(info, seed.tenantA, [seed.roleBilling]), true);
  assert.equal(client.validateTenantRoles(info, seed.tenantB, [seed.roleBilling]), false);
  assert.equal(client.validateTenantRoles(info, seed.tenantSso, [seed.roleBilling]), false);
  assert.equal(client.validateTenantPermissions(info, seed.tenantA, [seed.permBilling]), true);
  assert.equal(client.validateTenantPermissions(info, seed.tenantA, [seed.permWrite]), false);
  assert.equal(client.validateTenantPermissions(info, seed.tenantB, [seed.permBilling]), false);
  assert.equal(client.validateRoles(info, [seed.roleBilling]), false);
});

test('selectTenant sets dct', async () => {
  const user = await makeUser({ roles: [], tenants: [[seed.tenantA, [seed.roleBilling]], [seed.tenantB, []]] });
  const res = await login(user);
  assert.equal((await client.validateSession(res.sessionJwt)).token.dct, undefined);
  const selected = await client.selectTenant(seed.tenantA, res.refreshJwt);
  assert.ok(selected.ok, JSON.stringify(selected.error));
  const info = await client.validateSession(selected.data.sessionJwt);
  assert.equal(info.token.dct, seed.tenantA);
  assert.equal(client.validateTenantRoles(info, seed.tenantA, [seed.roleBilling]), true);
  const refused = await client.selectTenant(seed.tenantSso, res.refreshJwt);
  assert.equal(refused.ok, false, 'selected a tenant the user is not in');
  assert.ok(refused.code >= 400 && refused.code < 500, `status ${refused.code}`);
});

// --- me --------------------------------------------------------------------
test('me', async () => {
  const user = await makeUser({ roles: [seed.roleViewer], tenants: [[seed.tenantA, [seed.roleBilling]]] });
  const me = ok(await client.me((await login(user)).refreshJwt), 'me');
  assert.equal(me.userId, user.userId);
  assert.deepEqual(me.loginIds, [user.loginId]);
  assert.equal(me.email, user.email);
  assert.equal(me.name, user.name);
  assert.ok(me.roleNames.includes(seed.roleViewer));
  assert.deepEqual(me.userTenants.map((t) => t.tenantId), [seed.tenantA]);
});

test('me without a valid refresh token fails', async () => {
  const res = await client.me('not-a-jwt');
  assert.equal(res.ok, false);
  assert.ok(res.code >= 400 && res.code < 500, `status ${res.code}`);
});

// --- OAuth / SSO -------------------------------------------------------------
test('oauth.start, consent page, oauth.exchange', async () => {
  const user = await makeUser();
  const start = ok(await client.oauth.start('google', RETURN_URL), 'oauth.start');
  assert.match(start.url, /^http/);
  const code = codeFromRedirect(await submitProviderPage(start.url, user), RETURN_URL);
  const out = await client.oauth.exchange(code);
  assert.ok(out.ok, JSON.stringify(out.error));
  assert.equal((await client.validateSession(out.data.sessionJwt)).token.sub, user.userId);
  const again = await client.oauth.exchange(code);
  assert.equal(again.ok, false, 'an OAuth code must be single use');
});

test('oauth.start.github shortcut', async () => {
  const user = await makeUser();
  const start = ok(await client.oauth.start.github(RETURN_URL), 'oauth.start.github');
  const code = codeFromRedirect(await submitProviderPage(start.url, user), RETURN_URL);
  const out = await client.oauth.exchange(code);
  assert.ok(out.ok, JSON.stringify(out.error));
});

test('the consent page signs up a typed login id', async () => {
  const loginId = `${unique('oauthnew')}@example.com`;
  const start = ok(await client.oauth.start('github', RETURN_URL), 'oauth.start');
  const resp = await submitProviderPage(start.url, { loginId, email: loginId, userId: '' }, true);
  const out = ok(await client.oauth.exchange(codeFromRedirect(resp, RETURN_URL)), 'oauth.exchange');
  assert.deepEqual(out.user.loginIds, [loginId]);
  assert.equal(out.firstSeen, true);
});

test('sso.start (saml path), IdP page, sso.exchange', async () => {
  const user = await makeUser({ roles: [], tenants: [[seed.tenantSso, []]] });
  const start = ok(await client.sso.start(seed.tenantSso, RETURN_URL), 'sso.start');
  assert.match(start.url, /^http/);
  const code = codeFromRedirect(await submitProviderPage(start.url, user), RETURN_URL);
  const out = await client.sso.exchange(code);
  assert.ok(out.ok, JSON.stringify(out.error));
  const info = await client.validateSession(out.data.sessionJwt);
  assert.equal(info.token.sub, user.userId);
  assert.ok(seed.tenantSso in info.token.tenants);
});

test('saml.start and saml.exchange', async () => {
  const user = await makeUser({ roles: [], tenants: [[seed.tenantSso, []]] });
  const start = ok(await client.saml.start(seed.tenantSso, RETURN_URL), 'saml.start');
  const code = codeFromRedirect(await submitProviderPage(start.url, user), RETURN_URL);
  const out = await client.saml.exchange(code);
  assert.ok(out.ok, JSON.stringify(out.error));
  assert.ok(out.data.refreshJwt);
});

// --- logout / rotation / cookie mode ----------------------------------------
test('logout, then refresh fails', async () => {
  const res = await login(await makeUser());
  ok(await client.logout(res.refreshJwt), 'logout');
  await rejects(client.refreshSession(res.refreshJwt));
  const raw = await client.refresh(res.refreshJwt);
  assert.equal(raw.ok, false);
  assert.equal(raw.code, 401);
});

test('logoutAll revokes every session', async () => {
  const user = await makeUser();
  const first = await login(user);
  const second = await login(user);
  ok(await client.logoutAll(first.refreshJwt), 'logoutAll');
  for (const res of [first, second]) {
    const raw = await client.refresh(res.refreshJwt);
    assert.equal(raw.ok, false);
    assert.equal(raw.code, 401);
  }
});

test('refresh-token rotation: the old refresh token fails after use', async () => {
  await ctl.post('rotation', { enabled: true });
  try {
    const res = await login(await makeUser());
    const rotated = await client.refreshSession(res.refreshJwt);
    assert.ok(rotated.refreshJwt, 'rotation on, but no new refresh token');
    assert.notEqual(rotated.refreshJwt, res.refreshJwt);
    await rejects(client.refreshSession(res.refreshJwt));
    const again = await client.refreshSession(rotated.refreshJwt);
    assert.equal(again.token.sub, rotated.token.sub);
  } finally {
    await ctl.post('rotation', { enabled: false });
  }
});

test('cookie mode still yields sessions', async () => {
  await ctl.post('cookie-mode', { enabled: true });
  try {
    const user = await makeUser();
    const { link } = ok(await mgmt.user.generateMagicLinkForTestUser('email', user.loginId, VERIFY_URL), 'generate');
    const res = await client.magicLink.verify(linkToken(link));
    assert.ok(res.ok, JSON.stringify(res.error));
    const body = await res.response.clone().json();
    assert.equal(body.refreshJwt, undefined, 'cookie mode, but refreshJwt is in the body');
    assert.ok(res.data.refreshJwt, 'the SDK did not find DSR in Set-Cookie');
    assert.ok(res.data.cookies.join(';').includes(`DSR=${res.data.refreshJwt}`));
    assert.equal((await client.validateSession(res.data.sessionJwt)).token.sub, user.userId);
    const refreshed = await client.refreshSession(res.data.refreshJwt);
    assert.equal(refreshed.token.sub, user.userId);
    assert.ok(refreshed.cookies.length > 0, 'refresh in cookie mode set no cookies');
    const me = ok(await client.me(res.data.refreshJwt), 'me');
    assert.equal(me.userId, user.userId);
  } finally {
    await ctl.post('cookie-mode', { enabled: false });
  }
});

// --- faults ------------------------------------------------------------------
test('rate-limit fault gives retryAfter', async () => {
  const res = await login(await makeUser());
  await ctl.post('faults', { path: '/v1/auth/refresh', type: 'rate_limit', retryAfterSecs: 7, times: 1 });
  try {
    const limited = await client.refresh(res.refreshJwt);
    assert.equal(limited.ok, false);
    assert.equal(limited.code, 429);
    assert.equal(limited.error.errorCode, 'E130429');
    assert.equal(limited.error.retryAfter, 7);
    const after = await client.refresh(res.refreshJwt);
    assert.ok(after.ok, JSON.stringify(after.error));
  } finally {
    await ctl.clearFaults();
  }
});

test('status fault and call counts', async () => {
  const res = await login(await makeUser());
  const { count: before } = await ctl.get('calls?path=/v1/auth/refresh');
  await ctl.post('faults', { path: '/v1/auth/refresh', type: 'status', status: 500, times: 1 });
  try {
    const failed = await client.refresh(res.refreshJwt);
    assert.equal(failed.code, 500);
    assert.ok(failed.error.errorCode, 'error body without errorCode');
    ok(await client.refresh(res.refreshJwt), 'refresh after the fault');
  } finally {
    await ctl.clearFaults();
  }
  const { count: after } = await ctl.get('calls?path=/v1/auth/refresh');
  assert.equal(after, before + 2);
});

// --- more sign-in methods ------------------------------------------------------
async function outboxFor(address) {
  const all = await ctl.get('outbox.json');
  const entries = Array.isArray(all) ? all : all.entries;
  return entries.filter((e) => e.to === address);
}

test('magicLink.signUpOrIn via the outbox, then signIn; signUp of an existing user fails', async () => {
  const loginId = `${unique('new')}@example.com`;
  const start = await client.magicLink.signUpOrIn.email(loginId, VERIFY_URL);
  assert.ok(start.ok, JSON.stringify(start.error));
  assert.match(start.data.maskedEmail, /@/);
  const links = (await outboxFor(loginId)).filter((e) => e.link).map((e) => e.link);
  assert.ok(links.length, 'no magic link in the outbox');
  const out = ok(await client.magicLink.verify(linkToken(links.at(-1))), 'magicLink.verify');
  assert.deepEqual(out.user.loginIds, [loginId]);
  assert.equal(out.firstSeen, true);
  ok(await client.magicLink.signIn.email(loginId, VERIFY_URL), 'magicLink.signIn');
  const dup = await client.magicLink.signUp.email(loginId, VERIFY_URL, { name: 'x' });
  assert.equal(dup.ok, false);
});

test('enchantedLink.signIn via the outbox', async () => {
  const user = await makeUser();
  const start = ok(await client.enchantedLink.signIn(user.loginId, VERIFY_URL), 'enchantedLink.signIn');
  assert.ok(start.pendingRef && start.linkId, JSON.stringify(start));
  const links = (await outboxFor(user.email)).filter((e) => e.link).map((e) => e.link);
  assert.ok(links.length, 'no enchanted link in the outbox');
  ok(await client.enchantedLink.verify(linkToken(links.at(-1))), 'enchantedLink.verify');
  const session = await client.enchantedLink.waitForSession(start.pendingRef, { pollingIntervalMs: 1000, timeoutMs: 10000 });
  assert.ok(session.ok, JSON.stringify(session.error));
  assert.equal((await client.validateSession(session.data.sessionJwt)).token.sub, user.userId);
});

test('otp.signUp creates the user', async () => {
  const loginId = `${unique('otp')}@example.com`;
  ok(await client.otp.signUp.email(loginId, { name: 'Otp Person' }), 'otp.signUp.email');
  const codes = (await outboxFor(loginId)).filter((e) => e.code).map((e) => e.code);
  assert.ok(codes.length, 'no OTP code in the outbox');
  const out = ok(await client.otp.verify.email(loginId, codes.at(-1)), 'otp.verify.email');
  assert.equal(out.user.name, 'Otp Person');
});

test('password signUp, signIn, replace, policy', async () => {
  const loginId = `${unique('pwd')}@example.com`;
  const up = ok(await client.password.signUp(loginId, 'Secr3t-Passw0rd!', { name: 'Pat' }), 'password.signUp');
  const sub = (await client.validateSession(up.sessionJwt)).token.sub;
  const wrong = await client.password.signIn(loginId, 'wrong-password');
  assert.equal(wrong.ok, false);
  assert.ok(wrong.code >= 400 && wrong.code < 500);
  const inn = ok(await client.password.signIn(loginId, 'Secr3t-Passw0rd!'), 'password.signIn');
  assert.equal((await client.validateSession(inn.sessionJwt)).token.sub, sub);
  ok(await client.password.replace(loginId, 'Secr3t-Passw0rd!', 'N3w-Passw0rd!!'), 'password.replace');
  ok(await client.password.signIn(loginId, 'N3w-Passw0rd!!'), 'password.signIn (new)');
  const policy = ok(await client.password.policy(), 'password.policy');
  assert.ok('minLength' in policy, JSON.stringify(policy));
});

function totpCode(base32Key, at = Date.now() / 1000) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of base32Key.toUpperCase().replace(/=+$/, '')) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  return import('node:crypto').then(({ createHmac }) => {
    const d = createHmac('sha1', Buffer.from(bytes)).update(counter).digest();
    const o = d[d.length - 1] & 0xf;
    return String((d.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, '0');
  });
}

test('totp.signUp, then totp.verify', async () => {
  const loginId = `${unique('totp')}@example.com`;
  const res = ok(await client.totp.signUp(loginId, { name: 'Toto' }), 'totp.signUp');
  assert.match(res.provisioningURL, /^otpauth:\/\/totp\//);
  const out = ok(await client.totp.verify(loginId, await totpCode(res.key)), 'totp.verify');
  assert.deepEqual(out.user.loginIds, [loginId]);
});

test('exchangeAccessKey', async () => {
  const created = ok(await mgmt.accessKey.create(unique('key'), 0, [seed.roleViewer]), 'accessKey.create');
  const info = await client.exchangeAccessKey(created.cleartext);
  assert.equal(info.token.sub, created.key.id);
  assert.equal(client.validateRoles(info, [seed.roleViewer]), true);
  await rejects(client.exchangeAccessKey('K-not-a-real-key'));
});

test('embedded link verifies as a magic link', async () => {
  const user = await makeUser();
  const { token } = ok(await mgmt.user.generateEmbeddedLink(user.loginId, { team: 'blue' }), 'generateEmbeddedLink');
  const out = ok(await client.magicLink.verify(token), 'magicLink.verify');
  const info = await client.validateSession(out.sessionJwt);
  assert.equal(info.token.sub, user.userId);
  assert.equal(info.token.team, 'blue');
});

test('enchantedLink.signUpOrIn and otp.signUpOrIn', async () => {
  const loginId = `${unique('either')}@example.com`;
  const start = ok(await client.enchantedLink.signUpOrIn(loginId, VERIFY_URL), 'enchantedLink.signUpOrIn');
  const links = (await outboxFor(loginId)).filter((e) => e.link).map((e) => e.link);
  assert.ok(links.length, 'no enchanted link in the outbox');
  ok(await client.enchantedLink.verify(linkToken(links.at(-1))), 'enchantedLink.verify');
  const first = await client.enchantedLink.waitForSession(start.pendingRef, { pollingIntervalMs: 1000, timeoutMs: 10000 });
  assert.ok(first.ok, JSON.stringify(first.error));
  ok(await client.otp.signUpOrIn.email(loginId), 'otp.signUpOrIn.email');
  const codes = (await outboxFor(loginId)).filter((e) => e.code).map((e) => e.code);
  const second = ok(await client.otp.verify.email(loginId, codes.at(-1)), 'otp.verify.email');
  assert.equal(second.user.userId, first.data.user.userId);
});

test('password.update with the refresh token', async () => {
  const loginId = `${unique('pwdupd')}@example.com`;
  const up = ok(await client.password.signUp(loginId, 'First-Passw0rd!', {}), 'password.signUp');
  ok(await client.password.update(loginId, 'Second-Passw0rd!', up.refreshJwt), 'password.update');
  ok(await client.password.signIn(loginId, 'Second-Passw0rd!'), 'password.signIn (new)');
  assert.equal((await client.password.signIn(loginId, 'First-Passw0rd!')).ok, false);
});

// --- more session endpoints -------------------------------------------------
test('myTenants and history', async () => {
  const user = await makeUser({ roles: [], tenants: [[seed.tenantA, []], [seed.tenantB, []]] });
  const res = await login(user);
  const mine = ok(await client.myTenants([seed.tenantA], res.refreshJwt), 'myTenants');
  assert.deepEqual(mine.tenants.map((t) => t.id), [seed.tenantA]);
  const selected = ok(await client.selectTenant(seed.tenantB, res.refreshJwt), 'selectTenant');
  const current = ok(await client.myTenants(true, selected.refreshJwt), 'myTenants(dct)');
  assert.deepEqual(current.tenants.map((t) => t.id), [seed.tenantB]);
  const history = ok(await client.history(res.refreshJwt), 'history');
  assert.ok(Array.isArray(history));
});

test('management logoutUser revokes refresh', async () => {
  const user = await makeUser();
  const res = await login(user);
  ok(await mgmt.user.logoutUser(user.loginId), 'logoutUser');
  const raw = await client.refresh(res.refreshJwt);
  assert.equal(raw.code, 401);
});

test('refresh reflects role changes', async () => {
  const user = await makeUser({ roles: [seed.roleViewer] });
  const res = await login(user);
  ok(await mgmt.user.addRoles(user.loginId, [seed.roleEditor]), 'addRoles');
  const refreshed = await client.refreshSession(res.refreshJwt);
  assert.equal(client.validateRoles(refreshed, [seed.roleEditor]), true);
  assert.equal(client.validatePermissions(refreshed, [seed.permWrite]), true);
});

test('the SDK retries a 503 once', async () => {
  const res = await login(await makeUser());
  const { count: before } = await ctl.get('calls?path=/v1/auth/refresh');
  await ctl.post('faults', { path: '/v1/auth/refresh', type: 'status', status: 503, times: 1 });
  try {
    ok(await client.refresh(res.refreshJwt), 'refresh through a 503');
  } finally {
    await ctl.clearFaults();
  }
  const { count: after } = await ctl.get('calls?path=/v1/auth/refresh');
  assert.equal(after, before + 2);
});

test('a dropped connection surfaces as an error', async () => {
  const res = await login(await makeUser());
  await ctl.post('faults', { path: '/v1/auth/refresh', type: 'drop', times: 1 });
  try {
    await rejects(client.refreshSession(res.refreshJwt));
  } finally {
    await ctl.clearFaults();
  }
  ok(await client.refresh(res.refreshJwt), 'refresh after the drop');
});

// --- start-up options ----------------------------------------------------------
// A second emulator with its own flags; resolves once it prints its address.
async function spawnEmulator(...args) {
  const bin = process.env.PORTCULLIS_BIN;
  assert.ok(bin, 'PORTCULLIS_BIN is not set (run through tests/conformance/run)');
  const projectId = `P2spawned${randomUUID().replace(/-/g, '').slice(0, 19)}`;
  const controlToken = `T-${randomUUID()}`;
  const child = spawn(bin, ['emulator', '--listen', '127.0.0.1:0', '--project-id', projectId,
    '--control-token', controlToken, '--key-type', env.keyType, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = createInterface({ input: child.stdout });
  const [line] = await Promise.race([
    new Promise((resolve) => lines.once('line', (l) => resolve([l]))),
    new Promise((resolve) => child.once('exit', () => resolve(['']))),
  ]);
  const m = line.match(/listening on (http:\/\/\S+)/);
  if (!m) { child.kill(); throw new Error(`emulator did not start: ${line}`); }
  lines.on('line', () => {});
  const stop = () => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  return { url: m[1], projectId, controlToken, stop };
}

test('--issuer-project-id: node accepts iss = project id', async () => {
  const emu = await spawnEmulator('--issuer-project-id');
  try {
    const r = await fetch(`${emu.url}/emulator/mint`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${emu.controlToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ sub: 'U-x' }),
    });
    const { token } = await r.json();
    const c = DescopeClient({ projectId: emu.projectId, baseUrl: emu.url });
    const info = await c.validateSession(token);
    assert.equal(info.token.iss, emu.projectId);
    // An issuer naming another project is refused by node's issuer check.
    const foreign = await (await fetch(`${emu.url}/emulator/mint`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${emu.controlToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ sub: 'U-x', claims: { iss: 'https://example.com/P2someoneelse' } }),
    })).json();
    await rejects(c.validateSession(foreign.token), /iss/);
  } finally {
    await emu.stop();
  }
});

// --- access keys: management and exchange -----------------------------------
test('accessKey create, load, searchAll, update and exchangeAccessKey with claims and expiry', async () => {
  const expire = Math.floor(Date.now() / 1000) + 3600;
  const created = ok(await mgmt.accessKey.create(
    unique('svc'), expire, [seed.roleViewer], [{ tenantId: seed.tenantA, roleNames: [seed.roleBilling] }],
    undefined, { service: 'billing' }, 'nightly export', ['127.0.0.0/8', '::1'], { team: 'ops' },
  ), 'accessKey.create');
  const id = created.key.id;
  assert.equal(created.key.status, 'active');
  const loaded = ok(await mgmt.accessKey.load(id), 'accessKey.load');
  assert.equal(loaded.description, 'nightly export');
  assert.deepEqual(loaded.permittedIps, ['127.0.0.0/8', '::1']);
  assert.equal(loaded.expireTime, expire);
  const found = ok(await mgmt.accessKey.searchAll([seed.tenantA]), 'accessKey.searchAll');
  assert.ok(found.some((k) => k.id === id));

  const info = await client.exchangeAccessKey(created.cleartext, { customClaims: { run: 7 } });
  assert.equal(info.token.sub, id);
  assert.equal(client.validateRoles(info, [seed.roleViewer]), true);
  assert.equal(client.validateTenantRoles(info, seed.tenantA, [seed.roleBilling]), true);
  assert.equal(info.token.service, 'billing');
  assert.equal(info.token.run, 7);
  assert.ok(info.token.exp <= expire);

  const updated = ok(await mgmt.accessKey.update(id, 'renamed', undefined, undefined, undefined, { service: 'ledger' }),
    'accessKey.update');
  assert.equal(updated.name, 'renamed');
  assert.equal(updated.description, 'nightly export', 'fields not given keep their value');
  assert.equal((await client.exchangeAccessKey(created.cleartext)).token.service, 'ledger');
});

test('deactivated, deleted, expired and IP-fenced access keys fail to exchange', async () => {
  const created = ok(await mgmt.accessKey.create(unique('svc'), 0, [seed.roleViewer]), 'accessKey.create');
  const id = created.key.id;
  await client.exchangeAccessKey(created.cleartext);
  ok(await mgmt.accessKey.deactivate(id), 'accessKey.deactivate');
  assert.equal(ok(await mgmt.accessKey.load(id), 'accessKey.load').status, 'inactive');
  await rejects(client.exchangeAccessKey(created.cleartext));
  ok(await mgmt.accessKey.activate(id), 'accessKey.activate');
  assert.equal((await client.exchangeAccessKey(created.cleartext)).token.sub, id);
  ok(await mgmt.accessKey.delete(id), 'accessKey.delete');
  await rejects(client.exchangeAccessKey(created.cleartext));
  assert.equal((await mgmt.accessKey.load(id)).ok, false);

  const expired = ok(await mgmt.accessKey.create(unique('old'), Math.floor(Date.now() / 1000) - 5), 'accessKey.create');
  await rejects(client.exchangeAccessKey(expired.cleartext));

  // The emulator sees this test from 127.0.0.1: outside 10.0.0.0/8.
  const fenced = ok(await mgmt.accessKey.create(unique('fenced'), 0, [], undefined, undefined, undefined, undefined,
    ['10.0.0.0/8']), 'accessKey.create');
  await rejects(client.exchangeAccessKey(fenced.cleartext));
  ok(await mgmt.accessKey.update(fenced.key.id, fenced.key.name, undefined, undefined, undefined, undefined, ['127.0.0.1']),
    'accessKey.update');
  assert.equal((await client.exchangeAccessKey(fenced.cleartext)).token.sub, fenced.key.id);

  const counted = await ctl.get(`calls?path=${encodeURIComponent('/v1/auth/accesskey/exchange')}`);
  assert.ok(counted.count >= 7, `exchanges are counted: ${JSON.stringify(counted)}`);
});

// --- SSO settings through the management API --------------------------------
async function newTenant() {
  const id = unique('TCFG');
  ok(await mgmt.tenant.createWithId(id, `Tenant ${id}`), 'tenant.createWithId');
  return id;
}

test('sso.configureSAMLSettings makes a tenant an SSO tenant; deleteSettings undoes it', async () => {
  const tid = await newTenant();
  assert.equal((await client.sso.start(tid, RETURN_URL)).ok, false);
  ok(await mgmt.sso.configureSAMLSettings(tid, {
    idpUrl: 'https://idp.example.test/sso', entityId: 'urn:example:idp', idpCert: 'MIIC-not-a-real-cert',
    roleMappings: [{ groups: ['eng'], roleName: seed.roleEditor }],
    attributeMapping: { email: 'mail' },
    defaultSSORoles: [seed.roleViewer],
  }, RETURN_URL, [`${tid.toLowerCase()}.test`]), 'sso.configureSAMLSettings');
  const settings = ok(await mgmt.sso.loadSettings(tid), 'sso.loadSettings');
  assert.equal(settings.tenant.authType, 'saml');
  assert.equal(settings.saml.idpSSOUrl, 'https://idp.example.test/sso');
  assert.equal(settings.saml.idpEntityId, 'urn:example:idp');
  assert.equal(settings.saml.groupsMapping[0].roleName, seed.roleEditor);
  assert.equal(settings.saml.redirectUrl, RETURN_URL);

  const user = await makeUser({ roles: [], tenants: [[tid, []]] });
  const start = ok(await client.sso.start(tid, RETURN_URL), 'sso.start');
  const code = codeFromRedirect(await submitProviderPage(start.url, user), RETURN_URL);
  const out = ok(await client.sso.exchange(code), 'sso.exchange');
  const info = await client.validateSession(out.sessionJwt);
  assert.ok(tid in info.token.tenants);

  ok(await mgmt.sso.deleteSettings(tid), 'sso.deleteSettings');
  assert.equal(ok(await mgmt.sso.loadSettings(tid), 'sso.loadSettings').tenant.authType, 'none');
  assert.equal((await client.sso.start(tid, RETURN_URL)).ok, false);
});

test('sso.configureSAMLByMetadata and sso.configureOIDCSettings load back', async () => {
  const meta = await newTenant();
  ok(await mgmt.sso.configureSAMLByMetadata(meta, { idpMetadataUrl: 'https://idp.example.test/metadata' }),
    'sso.configureSAMLByMetadata');
  const m = ok(await mgmt.sso.loadSettings(meta), 'sso.loadSettings');
  assert.equal(m.saml.idpMetadataUrl, 'https://idp.example.test/metadata');
  ok(await client.sso.start(meta, RETURN_URL), 'sso.start');

  const oidc = await newTenant();
  ok(await mgmt.sso.configureOIDCSettings(oidc, {
    name: 'Okta', clientId: 'client-123', clientSecret: 'shh', authUrl: 'https://okta.example.test/authorize',
    scope: ['openid', 'email'], attributeMapping: { loginId: 'sub', email: 'email' },
  }, [`${oidc.toLowerCase()}.test`]), 'sso.configureOIDCSettings');
  const o = ok(await mgmt.sso.loadSettings(oidc), 'sso.loadSettings');
  assert.equal(o.tenant.authType, 'oidc');
  assert.equal(o.oidc.name, 'Okta');
  assert.equal(o.oidc.clientId, 'client-123');
  assert.equal(o.oidc.attributeMapping.loginId, 'sub');
  ok(await client.sso.start(`someone@${oidc.toLowerCase()}.test`, RETURN_URL), 'sso.start by SSO domain');
});

// --- Descope Flows (core-js flow.start / flow.next, as the web component calls them) ---
async function lastOutbox(kind, loginId) {
  const entries = await ctl.get('outbox.json');
  const e = entries.filter((x) => x.kind === kind && x.loginId === loginId).pop();
  assert.ok(e, `no ${kind} for ${loginId} in the outbox`);
  return e;
}

test('flow.start / flow.next: code flow with a wrong code on the screen, then a session', async () => {
  const user = await makeUser();
  const page = 'http://127.0.0.1:9/login';
  const welcome = ok(await client.flow.start('sign-in', { location: page }), 'flow.start');
  assert.equal(welcome.screen.id, 'welcome');
  const sent = ok(await client.flow.next(welcome.executionId, welcome.stepId, 'send-code', 1, '', { email: user.email }),
    'flow.next send-code');
  assert.equal(sent.screen.id, 'otp-code');
  const { code } = await lastOutbox('otp', user.loginId);
  const wrong = ok(await client.flow.next(sent.executionId, sent.stepId, 'verify-code', 1, '',
    { code: code === '000000' ? '111111' : '000000' }), 'flow.next wrong code');
  assert.equal(wrong.screen.id, 'otp-code');
  assert.match(wrong.screen.state.errorText, /wrong/i);
  const done = ok(await client.flow.next(wrong.executionId, wrong.stepId, 'verify-code', 1, '', { code }),
    'flow.next code');
  assert.equal(done.status, 'completed');
  const info = await client.validateSession(done.authInfo.sessionJwt);
  assert.equal(info.token.sub, user.userId);
  assert.ok(done.authInfo.refreshJwt);
});

test('flow.next resumes a magic-link execution from the link', async () => {
  const user = await makeUser();
  const page = 'http://127.0.0.1:9/login?return_to=%2F';
  const welcome = ok(await client.flow.start('sign-in', { location: page }), 'flow.start');
  const waiting = ok(await client.flow.next(welcome.executionId, welcome.stepId, 'send-link', 1, '', { email: user.email }),
    'flow.next send-link');
  assert.equal(waiting.screen.id, 'magic-link-sent');
  const poll = ok(await client.flow.next(waiting.executionId, waiting.stepId, 'polling', 1, '', {}), 'flow.next polling');
  assert.equal(poll.action, 'poll');
  const { link } = await lastOutbox('magiclink', user.loginId);
  const url = new URL(link);
  assert.ok(link.startsWith(page));
  const [executionId, stepId] = url.searchParams.get('descope-login-flow').split('_');
  const done = ok(await client.flow.next(executionId, stepId, 'submit', 1, '', { token: url.searchParams.get('t') }),
    'flow.next submit token');
  assert.equal(done.status, 'completed');
  assert.equal((await client.validateSession(done.authInfo.sessionJwt)).token.sub, user.userId);
});

test('management.flow.list names the emulated flows', async () => {
  const res = ok(await mgmt.flow.list(), 'flow.list');
  const ids = res.flows.map((f) => f.id);
  assert.ok(ids.includes('sign-in') && ids.includes('sign-up-or-in'), JSON.stringify(ids));
});
