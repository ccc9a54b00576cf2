// A real OpenID Connect provider for lucia_fastapi's tests: panva/node-oidc-provider (OpenID Certified) with its
// development login and consent pages, one RS256 signing key made at start, and the clients given in CLIENTS.
//
//   ISSUER=http://localhost:4000 PORT=4000 CLIENTS='[{"client_id":..,"client_secret":..,"redirect_uris":[..]}]' \
//     node server.mjs
//
// Listens on 127.0.0.1 only and prints "listening <issuer>" once it accepts connections.
//
// Accounts: any login is accepted by the development login page (its password is ignored); the login is the
// subject. The account's email is the login when it contains "@", else "<login>@provider.test"; it is verified
// unless the login starts with "unverified".
//
// One test-only control, POST /__test/next-token with {"mode": ...}, changes the ID token of the NEXT token
// response (then it is back to normal), to show that the relying party refuses it:
//   tamper     - the payload says another subject, the signature is the original one (invalid)
//   wrong-aud  - re-signed with the provider's own key, audience another client
//   expired    - re-signed with the provider's own key, expired an hour ago
//   wrong-nonce, wrong-iss - re-signed, with that claim changed
//   no-id-token - the id_token member is removed
import crypto from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

const issuer = process.env.ISSUER;
const port = Number(process.env.PORT);
const clients = JSON.parse(process.env.CLIENTS || '[]');
if (!issuer || !port) {
  console.error('ISSUER and PORT are required');
  process.exit(2);
}

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };

function account(login) {
  const email = login.includes('@') ? login : `${login}@provider.test`;
  return {
    accountId: login,
    async claims() {
      return {
        sub: login,
        email,
        email_verified: !login.startsWith('unverified'),
        name: login.split('@')[0],
      };
    },
  };
}

const provider = new Provider(issuer, {
  clients: clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  findAccount: async (_ctx, sub) => account(sub),
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  pkce: { required: () => true }, // the relying party must always send PKCE
  features: { devInteractions: { enabled: true } },
  ttl: { AccessToken: 3600, AuthorizationCode: 60, Grant: 3600, IdToken: 3600, Interaction: 600, Session: 3600 },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>Provider error</title><h1>${out.error}</h1><p>${out.error_description ?? ''}</p>`;
  },
});

let nextTokenMode = null;

async function resign(claims) {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }).sign(privateKey);
}

async function alter(idToken, mode) {
  const claims = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'tamper': {
      const [header, , signature] = idToken.split('.');
      const payload = Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url');
      return `${header}.${payload}.${signature}`;
    }
    case 'wrong-aud':
      return resign({ ...claims, aud: 'another-client', azp: 'another-client' });
    case 'expired':
      return resign({ ...claims, iat: now - 7200, exp: now - 3600 });
    case 'wrong-nonce':
      return resign({ ...claims, nonce: 'a-nonce-from-another-flow' });
    case 'wrong-iss':
      return resign({ ...claims, iss: 'https://evil.example' });
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/next-token' && ctx.method === 'POST') {
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    nextTokenMode = JSON.parse(body).mode;
    ctx.body = { mode: nextTokenMode };
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST' && ctx.status === 200 && nextTokenMode) {
    const mode = nextTokenMode;
    nextTokenMode = null;
    if (mode === 'no-id-token') {
      delete ctx.body.id_token;
    } else {
      decodeProtectedHeader(ctx.body.id_token);
      ctx.body = { ...ctx.body, id_token: await alter(ctx.body.id_token, mode) };
    }
  }
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
