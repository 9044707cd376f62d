// The OpenID provider the ward board's sign-in test runs (tests/e2e/test_ward_signin.py):
// node-oidc-provider, an OpenID Certified implementation, with its development login (any user
// name and password) and consent pages. One public client, the board, which must use PKCE; access
// tokens are JWTs for the API's audience, signed with a key made at start and published at /jwks.
//
//   node provider.mjs <port> <board origin> <API audience>
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const [port, board, audience] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const key = { ...privateKey.export({ format: "jwk" }), kid: "ward-signin-test", alg: "ES256", use: "sig" };
const SCOPES = "user/Patient.rs user/Patient.c";

const provider = new Provider(issuer, {
  clients: [{
    client_id: "painkiller-ward",
    token_endpoint_auth_method: "none",
    redirect_uris: [`${board}/ward/callback.html`],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    id_token_signed_response_alg: "ES256", // the only key's
  }],
  jwks: { keys: [key] },
  scopes: ["openid", ...SCOPES.split(" ")],
  pkce: { required: () => true },
  clientBasedCORS: () => true, // the board's page calls the token endpoint from its own origin
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: SCOPES, audience, accessTokenTTL: 3600, accessTokenFormat: "jwt", jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.listen(Number(port), "127.0.0.1", () => console.log(`OpenID provider at ${issuer}`));
