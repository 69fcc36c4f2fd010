// A real OpenID Provider for the gateway's tests: panva/oidc-provider
// (OpenID-certified), unmodified, configured here. Listens on a free
// loopback port, prints `port=<n>` and exits when stdin closes.
//
// Environment:
//   OP_REDIRECT_URIS   comma-separated redirect URIs for every client
//   OP_POST_LOGOUT     comma-separated post-logout redirect URIs
//   OP_ID_TOKEN_TTL    seconds (default 60); OP_ACCESS_TOKEN_TTL (default 60)
//   OP_ROTATE          "1": rotate refresh tokens on every use (reusing a
//                      rotated one revokes the whole grant, as oidc-provider does)
//
// Test-only endpoints (not part of the provider):
//   GET  /__counts             calls by endpoint and grant type, as JSON
//   POST /__fault?path=&status=&times=&error=   answer `status` on `path` for the next `times` calls
//   POST /__roles?account=&roles=a,b     change an account's roles
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const env = (k, d) => process.env[k] ?? d;
const redirectUris = env('OP_REDIRECT_URIS', 'http://gw.test/_auth/oidc/callback').split(',');
const postLogout = env('OP_POST_LOGOUT', 'http://gw.test/').split(',');
const idTtl = Number(env('OP_ID_TOKEN_TTL', '60'));
const atTtl = Number(env('OP_ACCESS_TOKEN_TTL', '60'));
const rotate = env('OP_ROTATE', '1') === '1';

const accounts = {
  alice: { email: 'alice@example.test', email_verified: true, name: 'Alice Example', roles: ['admin', 'staff'], realm_access: { roles: ['realm-admin'] }, groups: ['eng'], permissions: ['wiki:edit'] },
  bob: { email: 'bob@example.test', email_verified: false, name: 'Bob Example', roles: [], realm_access: { roles: [] }, groups: ['sales'], permissions: [] },
};

const counts = {};
const count = (k) => { counts[k] = (counts[k] ?? 0) + 1; };
const faults = {};

const server = http.createServer();
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'op-rsa-1', use: 'sig', alg: 'RS256' };

const common = {
  redirect_uris: redirectUris,
  post_logout_redirect_uris: postLogout,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};
const provider = new Provider(issuer, {
  clients: [
    { ...common, client_id: 'gw-basic', client_secret: 'gw-basic-secret', token_endpoint_auth_method: 'client_secret_basic' },
    { ...common, client_id: 'gw-post', client_secret: 'gw-post-secret', token_endpoint_auth_method: 'client_secret_post' },
    { ...common, client_id: 'gw-public', token_endpoint_auth_method: 'none' },
    { ...common, client_id: 'gw-hs256', client_secret: 'gw-hs256-secret-0123456789abcdef0123456789', token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: 'HS256' },
  ],
  jwks: { keys: [jwk] },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'HS256'] },
  cookies: { keys: ['portcullis-test-op-cookie-key'] },
  pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'roles'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    roles: ['roles', 'realm_access', 'groups', 'permissions'],
  },
  ttl: { IdToken: idTtl, AccessToken: atTtl, RefreshToken: 3600, Grant: 3600, Session: 3600, Interaction: 600 },
  rotateRefreshToken: () => rotate,
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource: async (ctx, form) => {
      // Confirm automatically: the test (or browser) lands on post_logout_redirect_uri.
      // logout=yes ends the provider's session too (not only the client's).
      const yes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
      ctx.body = `<!doctype html><html><body>${yes}<script>document.forms[0].submit()</script></body></html>`;
    } },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({ scope: 'api', audience: 'urn:portcullis-test:api', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
    },
  },
  extraTokenClaims: async (_ctx, token) => {
    const a = accounts[token.accountId];
    return a && token.kind === 'AccessToken' ? { roles: a.roles, email: a.email } : undefined;
  },
  findAccount: async (_ctx, id) => accounts[id] && {
    accountId: id,
    claims: async () => ({ sub: id, ...accounts[id] }),
  },
});
provider.proxy = false;

provider.use(async (ctx, next) => {
  if (ctx.path === '/__counts') { ctx.body = counts; return; }
  if (ctx.path === '/__fault' && ctx.method === 'POST') {
    faults[ctx.query.path] = { status: Number(ctx.query.status), times: Number(ctx.query.times ?? 1), error: ctx.query.error ?? 'temporarily_unavailable' };
    ctx.status = 204; return;
  }
  if (ctx.path === '/__roles' && ctx.method === 'POST') {
    accounts[ctx.query.account].roles = String(ctx.query.roles ?? '').split(',').filter(Boolean);
    ctx.status = 204; return;
  }
  const f = faults[ctx.path];
  if (f && f.times > 0) {
    f.times -= 1;
    count(`fault ${ctx.path}`);
    ctx.status = f.status; ctx.body = { error: f.error }; return;
  }
  await next();
  // The built-in login pages import a web font; pages here load nothing
  // from outside loopback (the e2e suite counts such requests).
  if (typeof ctx.body === 'string' && ctx.body.includes('fonts.googleapis.com')) {
    ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, '');
  }
  const grant = ctx.oidc?.params?.grant_type;
  count(grant ? `${ctx.path} ${grant}` : ctx.path);
});

server.on('request', provider.callback());
process.stdout.write(`port=${port}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
