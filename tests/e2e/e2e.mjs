// Real-browser end-to-end tests of Portcullis' hosted login (run via ./run).
//
// Starts, on free loopback ports: the Descope-API emulator (`portcullis
// emulator --web-components node_modules`), a demo upstream (below) that
// shows the identity headers it receives, and the gateway (`portcullis run`
// with a config written here); then `portcullis dev --web-components
// node_modules` and a plain `portcullis dev`. Headless Debian Chromium goes
// through every login flow, the `flow` method included: the **real**
// `<descope-wc>` (npm @descope/web-component and @descope/web-components-ui,
// pinned in package-lock.json), loaded from the emulator and running the
// emulator's Descope Flows. Every request that would leave loopback is
// aborted and counted: the suite requires zero, and zero CSP violations.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { THEME_FILE, generateTheme } from './flow-theme.mjs';

const BIN = process.env.PORTCULLIS_BIN;
const OUT = process.env.E2E_OUTPUT || path.resolve('test-output/e2e');
const DOCS = process.env.E2E_DOCS;
const PID = 'P2e2etestproject00000000000000';
const SECRET = 'e2e-secret-e2e-secret-e2e-secret-0123456789';
const TIMEOUT = 20_000;
const STEP_TIMEOUT = 8_000;
const HERE = path.dirname(fileURLToPath(import.meta.url));
// The npm packages of the real web component, installed by ./run (npm ci).
const NODE_MODULES = path.join(HERE, 'node_modules');
const WC_PACKAGE = '@descope/web-component';
const WC_VERSION = JSON.parse(fs.readFileSync(path.join(NODE_MODULES, WC_PACKAGE, 'package.json'))).version;
const WC_FILE = 'dist/index.js';

// Requests that would have left loopback (aborted), and CSP violations.
const external = [];
const cspViolations = [];

const children = [];
const servers = [];
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGTERM'); } catch { /* already gone */ }
  }
});

// --- processes and servers -------------------------------------------------

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function start(args, env = {}) {
  const child = spawn(BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'warn', ...env },
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  child.on('exit', (code) => {
    if (code && !child.stopping) console.error(`${args[0]} exited ${code}: ${stderr}`);
  });
  return child;
}

async function startEmulator(dir) {
  const seed = path.join(dir, 'seed.toml');
  fs.writeFileSync(seed, `
[[tenants]]
id = "T-acme"
name = "Acme"
sso = true
domains = ["acme.test"]

[[users]]
login_id = "alice@example.com"
user_id = "U-alice"
name = "Alice Example"
roles = ["member"]

[[users]]
login_id = "bob@acme.test"
user_id = "U-bob"
name = "Bob Acme"
tenants = [{ id = "T-acme", roles = ["member"] }]
`);
  const child = start(['emulator', '--listen', '127.0.0.1:0', '--project-id', PID, '--seed', seed,
    '--web-components', NODE_MODULES]);
  const rl = readline.createInterface({ input: child.stdout });
  const line = await new Promise((resolve, reject) => {
    rl.once('line', resolve);
    child.once('exit', () => reject(new Error('emulator exited')));
  });
  const m = /listening on (http:\/\/\S+)/.exec(line);
  if (!m) throw new Error(`unexpected emulator output: ${line}`);
  return m[1];
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

/** The demo app: shows the identity headers the gateway forwarded. */
async function startUpstream() {
  const server = http.createServer((req, res) => {
    const rows = Object.entries(req.headers)
      .filter(([k]) => k.startsWith('x-auth-'))
      .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
      .join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>Demo app</title><h1>Demo app</h1>
<p>Path: <code id="path">${escapeHtml(req.url)}</code></p>
<p>User: <strong id="user">${escapeHtml(req.headers['x-auth-user-id'] || '')}</strong></p>
<table>${rows}</table>`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return `http://127.0.0.1:${server.address().port}`;
}

async function emu(emuUrl, method, p, body) {
  const r = await fetch(`${emuUrl}${p}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`emulator ${p}: ${r.status}`);
  return r.json();
}

/** `sha384-…` of the web component's bundle, as the login page pins it. */
function integrity(file) {
  return `sha384-${crypto.createHash('sha384').update(fs.readFileSync(file)).digest('base64')}`;
}

async function startGateway(dir, emuUrl, upstream) {
  const port = await freePort();
  const gw = `http://127.0.0.1:${port}`;
  const file = path.join(dir, 'portcullis.toml');
  fs.writeFileSync(file, `
[server]
listen = "127.0.0.1:${port}"
public_url = "${gw}"

[admin]
listen = ""

[descope]
project_id = "${PID}"
base_url = "${emuUrl}"

[session]
secret = "env:E2E_PORTCULLIS_SECRET"

[login]
methods = ["flow", "magiclink", "enchantedlink", "otp", "oauth:google", "sso"]
app_name = "Portcullis demo"
web_component_url = "${emuUrl}/npm/${WC_PACKAGE}@${WC_VERSION}/${WC_FILE}"
web_component_integrity = "${integrity(path.join(NODE_MODULES, WC_PACKAGE, WC_FILE))}"
web_js_sdk_url = ""
cdn_url = "${emuUrl}"
after_logout = "/"

[upstreams.default]
url = "${upstream}"

[[routes]]
path = "/admin/**"
roles = ["superuser"]

[[routes]]
path = "/**"
access = "authenticated"
`);
  start(['run', '-c', file], { E2E_PORTCULLIS_SECRET: SECRET });
  // Ready when the login page renders and minted tokens verify (keys loaded).
  const { token } = await emu(emuUrl, 'POST', '/emulator/mint', { sub: 'U-alice', ttlSecs: 600 });
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${gw}/_auth/me`, { headers: { authorization: `Bearer ${token}` } });
      if (r.status === 200) return gw;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('gateway never became ready');
}

/** The real OpenID Provider of the Rust tests (oidc-provider) and a gateway
 * in OIDC mode in front of the demo upstream. */
async function startOidc(dir, upstream) {
  const port = await freePort();
  const gw = `http://127.0.0.1:${port}`;
  const op = spawn(process.execPath, [path.join(HERE, '../upstreams/oidc-provider/provider.mjs')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, OP_REDIRECT_URIS: `${gw}/_auth/oidc/callback`, OP_POST_LOGOUT: `${gw}/` },
  });
  children.push(op);
  const rl = readline.createInterface({ input: op.stdout });
  const line = await new Promise((resolve, reject) => {
    rl.once('line', resolve);
    op.once('exit', () => reject(new Error('the OpenID Provider exited')));
  });
  const m = /^port=(\d+)/.exec(line);
  if (!m) throw new Error(`unexpected provider output: ${line}`);
  const issuer = `http://127.0.0.1:${m[1]}`;
  const file = path.join(dir, 'portcullis-oidc.toml');
  fs.writeFileSync(file, `
[server]
listen = "127.0.0.1:${port}"
public_url = "${gw}"

[admin]
listen = ""

[oidc]
issuer = "${issuer}"
client_id = "gw-basic"
client_secret = "gw-basic-secret"
scopes = ["openid", "profile", "email", "offline_access", "roles"]
auth_params = { prompt = "consent" }

[session]
secret = "env:E2E_PORTCULLIS_SECRET"

[login]
after_logout = "/"

[upstreams.default]
url = "${upstream}"

[[routes]]
path = "/**"
access = "authenticated"
`);
  start(['run', '-c', file], { E2E_PORTCULLIS_SECRET: SECRET });
  // Ready when the login endpoint sends browsers to the provider.
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${gw}/_auth/login?return_to=/`, { redirect: 'manual' });
      if (r.status === 302 && (r.headers.get('location') || '').startsWith(issuer)) return { gw, issuer };
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the OIDC gateway never became ready');
}

// --- helpers -----------------------------------------------------------------

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function lastSent(emuUrl, kind, loginId) {
  const entries = await emu(emuUrl, 'GET', '/emulator/outbox.json');
  const e = entries.filter((x) => x.kind === kind && x.loginId === loginId).pop();
  check(e, `no ${kind} sent to ${loginId}`);
  return e;
}

async function calls(emuUrl, p) {
  const r = await emu(emuUrl, 'GET', `/emulator/calls?path=${encodeURIComponent(p)}`);
  return r.count ?? 0;
}

async function shot(page, name) {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function userOnPage(page) {
  return (await page.textContent('#user'))?.trim();
}

/** Aborts and records every request of `ctx` that would leave loopback, and
 * records CSP violations reported by its pages. */
async function guard(ctx) {
  await ctx.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return route.continue();
    external.push(url.href);
    return route.abort('blockedbyclient');
  });
  ctx.on('page', (page) => {
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(`${page.url()}: ${m.text()}`);
    });
  });
  ctx.setDefaultTimeout(STEP_TIMEOUT);
  return ctx;
}

/** The rendered `<descope-wc>` (its first screen shows the email field). */
async function flowReady(page) {
  const wc = page.locator('descope-wc');
  await wc.locator('descope-email-field input').first().waitFor({ timeout: TIMEOUT });
  return wc;
}

/** Types a one-time code into the flow's passcode field, digit by digit. */
async function typeCode(page, wc, code) {
  await wc.locator('descope-passcode input').first().click();
  await page.keyboard.type(code, { delay: 40 });
}

/** The error the flow screen shows (its `data-type="error-message"` element). */
async function flowError(wc) {
  const el = wc.locator('[data-type="error-message"]').first();
  for (let i = 0; i < 100; i++) {
    const text = (await el.textContent())?.trim();
    if (text) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  return '';
}

/** `portcullis dev` on free ports; resolves when its login page answers. */
async function startDev(extra) {
  const [gwPort, emuPort, demoPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  start(['dev', '--listen', `127.0.0.1:${gwPort}`, '--emulator-listen', `127.0.0.1:${emuPort}`,
    '--demo-listen', `127.0.0.1:${demoPort}`, '--admin-listen', `127.0.0.1:${adminPort}`, ...extra]);
  const gw = `http://127.0.0.1:${gwPort}`;
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${gw}/_auth/login`);
      if (r.status === 200) return { gw, emuUrl: `http://127.0.0.1:${emuPort}` };
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('portcullis dev never became ready');
}

// --- scenarios ---------------------------------------------------------------

function scenarios(env) {
  const { gw, emuUrl, browser } = env;
  const fresh = async () => guard(await browser.newContext());
  return [
    ['magic link via the outbox lands on the original return_to', async () => {
      const ctx = await fresh();
      env.aliceContext = ctx;
      const page = await ctx.newPage();
      await page.goto(`${gw}/docs/page?x=1`);
      check(page.url().startsWith(`${gw}/_auth/login?return_to=`), `not on login: ${page.url()}`);
      await flowReady(page);
      await shot(page, 'login-page');
      await page.fill('#login-email', 'alice@example.com');
      await page.click('button[data-method="magiclink"]');
      await page.waitForSelector('[data-page="check-email"]');
      await shot(page, 'magiclink-check-email');
      const { link } = await lastSent(emuUrl, 'magiclink', 'alice@example.com');
      check(link.startsWith(`${gw}/_auth/magiclink/verify?`), `link ${link}`);
      await page.goto(link); // interstitial, auto-submitted by its script
      await page.waitForURL(`${gw}/docs/page?x=1`);
      check(await userOnPage(page) === 'U-alice', 'upstream did not see Alice');
      await shot(page, 'magiclink-done');
    }],

    ['OAuth round trip through the consent page', async () => {
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${gw}/reports?month=11`);
      await page.click('a[data-provider="google"]');
      await page.waitForURL(`${emuUrl}/emulator/oauth/consent?**`);
      await shot(page, 'oauth-consent');
      await page.click('button[data-login-id="alice@example.com"]');
      await page.waitForURL(`${gw}/reports?month=11`);
      check(await userOnPage(page) === 'U-alice', 'upstream did not see Alice');
      await shot(page, 'oauth-done');
      await ctx.close();
    }],

    ['SSO round trip through the IdP page', async () => {
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${gw}/t/acme`);
      await page.fill('#sso-tenant', 'bob@acme.test');
      await page.click('form[data-method="sso"] button');
      await page.waitForURL(`${emuUrl}/emulator/sso/idp?**`);
      await shot(page, 'sso-idp');
      await page.click('button[data-login-id="bob@acme.test"]');
      await page.waitForURL(`${gw}/t/acme`);
      check(await userOnPage(page) === 'U-bob', 'upstream did not see Bob');
      await shot(page, 'sso-done');
      await ctx.close();
    }],

    ['enchanted link: the waiting tab signs in when the link is clicked elsewhere', async () => {
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${gw}/wiki/Home`);
      await page.fill('#login-email', 'alice@example.com');
      await page.click('button[data-method="enchantedlink"]');
      const number = (await page.textContent('.link-number')).trim();
      await shot(page, 'enchantedlink-waiting');
      const sent = await lastSent(emuUrl, 'enchantedlink', 'alice@example.com');
      check(sent.code === number, `page shows ${number}, email says ${sent.code}`);
      const phone = await fresh(); // another device
      const other = await phone.newPage();
      await other.goto(sent.link);
      await other.waitForSelector('text=Return to the tab where you started');
      await shot(other, 'enchantedlink-clicked');
      check((await phone.cookies()).every((c) => c.name !== 'DS'), 'the clicking device got a session');
      await page.waitForURL(`${gw}/wiki/Home`, { timeout: TIMEOUT });
      check(await userOnPage(page) === 'U-alice', 'upstream did not see Alice');
      await shot(page, 'enchantedlink-done');
      await phone.close();
      await ctx.close();
    }],

    ['one-time code typed into the code form', async () => {
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${gw}/inbox?folder=work`);
      await page.fill('#login-email', 'alice@example.com');
      await page.click('button[data-method="otp"]');
      await page.waitForSelector('#otp-code');
      await shot(page, 'otp-code-form');
      const { code } = await lastSent(emuUrl, 'otp', 'alice@example.com');
      await page.fill('#otp-code', code);
      await page.click('form[data-method="otp-verify"] button');
      await page.waitForURL(`${gw}/inbox?folder=work`);
      check(await userOnPage(page) === 'U-alice', 'upstream did not see Alice');
      await shot(page, 'otp-done');
      await ctx.close();
    }],

    ['two tabs log in at once, finishing in the opposite order', async () => {
      const ctx = await fresh();
      const [one, two] = [await ctx.newPage(), await ctx.newPage()];
      for (const [page, where] of [[one, '/tab/one'], [two, '/tab/two']]) {
        await page.goto(`${gw}${where}`);
        await page.click('a[data-provider="google"]');
        await page.waitForURL(`${emuUrl}/emulator/oauth/consent?**`);
      }
      // Each tab's OAuth start set its own state cookie (the login page's
      // flow nonces add more): none overwrote the other.
      const states = (await ctx.cookies()).filter((c) => c.name.includes('portcullis_state_'));
      check(states.length >= 2 && states.every((c) => c.path === '/_auth' && c.httpOnly && c.sameSite === 'Lax'),
        `state cookies: ${JSON.stringify(states.map((c) => [c.path, c.httpOnly, c.sameSite]))}`);
      await two.click('button[data-login-id="alice@example.com"]');
      await two.waitForURL(`${gw}/tab/two`);
      await one.click('button[data-login-id="alice@example.com"]');
      await one.waitForURL(`${gw}/tab/one`);
      check(await userOnPage(one) === 'U-alice' && await userOnPage(two) === 'U-alice', 'both tabs signed in');
      await shot(one, 'two-tabs-done');
      await ctx.close();
    }],

    ['flow: the real web component signs in through the OAuth consent page', async () => {
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${gw}/flow/landing?via=oauth`);
      const wc = await flowReady(page);
      await wc.locator('descope-button#oauth-google').click();
      await page.waitForURL(`${emuUrl}/emulator/oauth/consent?**`);
      await page.click('button[data-login-id="alice@example.com"]');
      await page.waitForURL(`${gw}/flow/landing?via=oauth`, { timeout: TIMEOUT });
      check(await userOnPage(page) === 'U-alice', 'upstream did not see Alice');
      // The page script drops the SDK's script-readable copy of the tokens;
      // the session lives in the gateway's HttpOnly cookie.
      const left = await page.evaluate(() => [localStorage.getItem('DS'), localStorage.getItem('DSR')]);
      check(left.every((v) => v === null), 'tokens left in localStorage');
      const ds = (await ctx.cookies(gw)).find((c) => c.name === 'DS');
      check(ds && ds.httpOnly, 'no HttpOnly session cookie');
      await shot(page, 'flow-oauth-done');
      await ctx.close();
    }],

    ['flow: a wrong one-time code is shown on the screen, the right one signs in', async () => {
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${gw}/flow/landing?via=code`);
      const wc = await flowReady(page);
      await wc.locator('descope-email-field input').first().fill('alice@example.com');
      await wc.locator('descope-button#send-code').click();
      await wc.locator('descope-passcode').waitFor();
      const { code } = await lastSent(emuUrl, 'otp', 'alice@example.com');
      await typeCode(page, wc, code === '000000' ? '111111' : '000000');
      const error = await flowError(wc);
      check(/wrong/i.test(error), `no error on the screen: ${JSON.stringify(error)}`);
      await shot(page, 'flow-wrong-code');
      await typeCode(page, wc, code);
      await page.waitForURL(`${gw}/flow/landing?via=code`, { timeout: TIMEOUT });
      check(await userOnPage(page) === 'U-alice', 'upstream did not see Alice');
      await ctx.close();
    }],

    ['an expired session is refreshed transparently in the browser', async () => {
      const ctx = env.aliceContext;
      check(ctx, 'needs the magic-link session');
      const { token: expired } = await emu(emuUrl, 'POST', '/emulator/mint', { sub: 'U-alice', ttlSecs: -120 });
      await ctx.addCookies([{ name: 'DS', value: expired, url: gw }]);
      const before = await calls(emuUrl, '/v1/auth/refresh');
      const page = await ctx.newPage();
      const resp = await page.goto(`${gw}/after/expiry`);
      check(resp.status() === 200, `status ${resp.status()}`);
      check(await userOnPage(page) === 'U-alice', 'upstream did not see Alice');
      check(await calls(emuUrl, '/v1/auth/refresh') === before + 1, 'no refresh call');
      const ds = (await ctx.cookies(gw)).find((c) => c.name === 'DS');
      check(ds && ds.value !== expired, 'the session cookie was not renewed');
      await shot(page, 'refresh-done');
      await page.close();
    }],

    ['a forbidden route shows the 403 page', async () => {
      const page = await env.aliceContext.newPage();
      const resp = await page.goto(`${gw}/admin/panel`);
      check(resp.status() === 403, `status ${resp.status()}`);
      check((await page.content()).includes('Access denied'), '403 page text');
      await shot(page, 'forbidden');
      await page.close();
    }],

    ['logout clears the session', async () => {
      const ctx = env.aliceContext;
      const page = await ctx.newPage();
      await page.goto(`${gw}/_auth/logout`);
      await shot(page, 'logout-confirm');
      await page.click('form button[type="submit"]');
      await page.waitForURL(`${gw}/_auth/login?**`);
      const names = (await ctx.cookies(gw)).map((c) => c.name);
      check(!names.includes('DS') && !names.includes('DSR'), `cookies left: ${names}`);
      await page.goto(`${gw}/docs/page`);
      check(page.url().startsWith(`${gw}/_auth/login`), 'still signed in after logout');
      await shot(page, 'logout-done');
      await ctx.close();
    }],

    ['dev --web-components: the real Flow, a wrong code on the screen, then the demo app', async () => {
      const { gw: devGw, emuUrl: devEmu } = env.dev;
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${devGw}/`);
      check(page.url().startsWith(`${devGw}/_auth/login?return_to=`), `not on login: ${page.url()}`);
      const wc = await flowReady(page);
      // The page as a new user sees it first: the README shows this screenshot.
      const login = await shot(page, 'dev-login-flow');
      if (DOCS) fs.copyFileSync(login, path.join(DOCS, 'login.png'));
      await wc.locator('descope-email-field input').first().fill('admin@example.com');
      await wc.locator('descope-button#send-code').click();
      await wc.locator('descope-passcode').waitFor();
      const { code } = await lastSent(devEmu, 'otp', 'admin@example.com');
      await typeCode(page, wc, code === '000000' ? '111111' : '000000');
      check(/wrong/i.test(await flowError(wc)), 'no error on the screen');
      await shot(page, 'dev-flow-wrong-code');
      await typeCode(page, wc, code);
      await page.waitForURL(`${devGw}/`, { timeout: TIMEOUT });
      const text = await page.textContent('body');
      check(text.includes('Demo app') && text.includes('for user U-admin'), `demo app: ${text.slice(0, 200)}`);
      await shot(page, 'dev-flow-demo-app');
      await ctx.close();
    }],

    ['dev --web-components: a magic link from the Flow signs in the tab it opens and the waiting tab', async () => {
      const { gw: devGw, emuUrl: devEmu } = env.dev;
      const ctx = await fresh();
      const waiting = await ctx.newPage();
      await waiting.goto(`${devGw}/`);
      const wc = await flowReady(waiting);
      await wc.locator('descope-email-field input').first().fill('user@example.com');
      await wc.locator('descope-button#send-link').click();
      await wc.locator('descope-loader-linear').waitFor();
      await shot(waiting, 'dev-flow-magic-link-sent');
      const { link } = await lastSent(devEmu, 'magiclink', 'user@example.com');
      check(link.startsWith(`${devGw}/_auth/login?`) && link.includes('descope-login-flow='), `link ${link}`);
      const opened = await ctx.newPage();
      await opened.goto(link);
      await opened.waitForURL(`${devGw}/`, { timeout: TIMEOUT });
      check((await opened.textContent('body')).includes('for user U-user'), 'the link tab is not signed in');
      await waiting.waitForURL(`${devGw}/`, { timeout: TIMEOUT });
      check((await waiting.textContent('body')).includes('for user U-user'), 'the waiting tab is not signed in');
      await ctx.close();
    }],

    ['dev without --web-components offers no flow and loads no script', async () => {
      const { gw: plainGw } = env.devPlain;
      const ctx = await fresh();
      const page = await ctx.newPage();
      const scripts = [];
      page.on('request', (r) => { if (r.resourceType() === 'script') scripts.push(r.url()); });
      await page.goto(`${plainGw}/`);
      await page.waitForSelector('#login-email');
      const html = await page.content();
      check(!html.includes('descope-wc'), 'a flow section without the web components');
      check(!html.includes('or</div><div class="or"'), 'two dividers in a row');
      check(scripts.length === 0, `scripts requested: ${scripts}`);
      await shot(page, 'dev-login-without-flow');
      await ctx.close();
    }],

    ['the committed flow theme is the one generated from the installed UI package', async () => {
      const generated = await generateTheme(NODE_MODULES);
      check(fs.readFileSync(THEME_FILE, 'utf8') === generated,
        'crates/emulator/assets/flow/theme.json is stale: run node tests/e2e/flow-theme.mjs --write');
    }],

    ['OIDC: sign in with the provider\'s own form, land on the app, sign out at the provider', async () => {
      const { gw: oidcGw, issuer } = env.oidc;
      const ctx = await fresh();
      const page = await ctx.newPage();
      await page.goto(`${oidcGw}/reports?month=12`);
      await page.waitForURL(`${issuer}/interaction/**`);
      await page.fill('input[name="login"]', 'alice');
      await page.fill('input[name="password"]', 'any');
      await shot(page, 'oidc-provider-login');
      await page.click('button[type="submit"]');
      await page.waitForSelector('input[name="prompt"][value="consent"]', { state: 'attached' });
      await page.click('button[type="submit"]');
      await page.waitForURL(`${oidcGw}/reports?month=12`);
      check(await userOnPage(page) === 'alice', 'upstream did not see alice');
      const cookies = await ctx.cookies(oidcGw);
      check(cookies.length > 0 && cookies.every((c) => c.httpOnly && !c.value.includes('eyJ')),
        'the session cookie is not sealed and HttpOnly');
      await shot(page, 'oidc-done');
      // Sign out: the gateway's page, then the provider ends its session and
      // sends the browser back; the app then needs a new sign-in at the provider.
      await page.goto(`${oidcGw}/_auth/logout`);
      await page.click('form button[type="submit"]');
      await page.waitForURL(`${issuer}/interaction/**`, { timeout: TIMEOUT });
      check(await page.locator('input[name="login"]').count() === 1, 'the provider did not ask to sign in again');
      await shot(page, 'oidc-signed-out');
      await ctx.close();
    }],

    ['no request left loopback and no CSP violation', async () => {
      check(external.length === 0, `${external.length} request(s) outside loopback: ${[...new Set(external)].join(' ')}`);
      check(cspViolations.length === 0, `CSP violations: ${cspViolations.join(' | ')}`);
    }],
  ];
}

// --- contrast (self-contained) ------------------------------------------------

// WCAG AA: every button on the hosted login page (primary and secondary)
// has a text/background contrast of at least 4.5:1, in the light and the
// dark colour scheme, computed from the styles Chromium applies.
function contrastScenario(env) {
  return ['buttons meet WCAG AA contrast in light and dark mode', async () => {
    const ctx = await env.browser.newContext();
    ctx.setDefaultTimeout(STEP_TIMEOUT);
    const page = await ctx.newPage();
    try {
      for (const colorScheme of ['light', 'dark']) {
        await page.emulateMedia({ colorScheme });
        await page.goto(`${env.gw}/_auth/login?return_to=%2F`);
        await page.waitForSelector('form[data-method="email"] button');
        const found = await page.evaluate(() => {
          const rgba = (s) => {
            const m = s.match(/rgba?\(([^)]+)\)/);
            if (!m) return null;
            const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
            return { r, g, b, a };
          };
          const lum = ({ r, g, b }) => {
            const f = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          };
          // The first opaque background at or above the element.
          const background = (el) => {
            for (let e = el; e; e = e.parentElement) {
              const c = rgba(getComputedStyle(e).backgroundColor);
              if (c && c.a > 0) return c;
            }
            return { r: 255, g: 255, b: 255, a: 1 };
          };
          return [...document.querySelectorAll('button, a.button')].map((el) => {
            const fg = rgba(getComputedStyle(el).color);
            const bg = background(el);
            const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
            return {
              label: el.textContent.trim(),
              primary: !el.classList.contains('secondary'),
              ratio: (hi + 0.05) / (lo + 0.05),
              fg: getComputedStyle(el).color,
              bg: `rgb(${bg.r}, ${bg.g}, ${bg.b})`,
            };
          });
        });
        check(found.some((b) => b.primary), `${colorScheme}: no primary button found`);
        for (const b of found) {
          check(b.ratio >= 4.5,
            `${colorScheme}: "${b.label}" ${b.fg} on ${b.bg} is ${b.ratio.toFixed(2)}:1, below 4.5:1`);
        }
        await shot(page, `login-${colorScheme}`);
      }
    } finally {
      await ctx.close();
    }
  }];
}

// --- main --------------------------------------------------------------------

async function main() {
  check(BIN, 'PORTCULLIS_BIN is not set (use ./run)');
  fs.mkdirSync(OUT, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-e2e-'));
  const emuUrl = await startEmulator(dir);
  const upstream = await startUpstream();
  const gw = await startGateway(dir, emuUrl, upstream);
  const dev = await startDev(['--web-components', NODE_MODULES]);
  const devPlain = await startDev([]);
  const oidc = await startOidc(dir, upstream);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright gives every launch a fresh temporary --user-data-dir itself
    // (and refuses one in args).
  });
  const env = { gw, emuUrl, browser, dev, devPlain, oidc };
  let passed = 0;
  let failed = 0;
  for (const [name, run] of [...scenarios(env), contrastScenario(env)]) {
    const t0 = Date.now();
    try {
      await run();
      passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
      const pages = browser.contexts().flatMap((c) => c.pages());
      const last = pages[pages.length - 1];
      if (last) {
        const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
        await shot(last, `failed-${slug}`).catch(() => {});
        const text = await last.evaluate(() => document.body?.innerText ?? '').catch(() => '');
        console.log(`     at ${last.url()}: ${text.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
    }
  }
  await browser.close();
  for (const s of servers) s.close();
  for (const c of children) { c.stopping = true; c.kill('SIGTERM'); }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => {
  console.error(e);
  console.log('e2e: 0 passed, 1 failed');
  process.exit(1);
});
