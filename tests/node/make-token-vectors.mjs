// Makes tests/data/node-hs256-tokens.json: HS256 tokens computed by Node's own crypto
// (no npm package), as a customer's server would make them, for tests/test_token_interop.py.
//
//   node tests/node/make-token-vectors.mjs > tests/data/node-hs256-tokens.json
//
// Deterministic: fixed secrets, user ids and times. Every token was issued at ISSUED_AT;
// the test verifies them with its clock frozen at VERIFY_AT, with a maximum token age of
// MAX_AGE seconds. "reason" is what verification must answer: null for a valid token.
import crypto from "node:crypto";

const ISSUED_AT = 1700000000; // 2023-11-14T22:13:20Z
const VERIFY_AT = ISSUED_AT + 600;
const MAX_AGE = 86400;
const SECRETS = [
  "tis_web_0123456789abcdefghijABCDEFGHIJ0123456789ABCD",
  "tis_ios_Zoë-ünïcode-key-ÄÖÜ-用户-🚀-0123456789",
];
const USER_IDS = [
  "42",
  " 42",
  "42 ",
  "USER-1",
  "user-1",
  "olivia@example.com",
  "a user with spaces",
  "Zoë",
  "Zoe\u0308",
  "用户-🚀",
  'quote " backslash \\ slash /',
  "x".repeat(300),
];

const b64url = (data) => Buffer.from(data).toString("base64url");

function token(secret, claims, header = { alg: "HS256", typ: "JWT" }, hash = "sha256") {
  const head = b64url(JSON.stringify(header));
  const body = b64url(JSON.stringify(claims));
  const mac = crypto.createHmac(hash, secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${mac}`;
}

const claimsFor = (userId, lifetime = 3600, extra = {}) => ({
  sub: userId,
  iat: ISSUED_AT,
  exp: ISSUED_AT + lifetime,
  ...extra,
});

const vectors = [];
for (const secret of SECRETS) {
  for (const userId of USER_IDS) {
    vectors.push({ secret, userId, token: token(secret, claimsFor(userId)), reason: null });
  }
}
const [secret] = SECRETS;
const add = (name, userId, signed, reason) =>
  vectors.push({ name, secret, userId, token: signed, reason });
add("claims in another order, a kid", "42",
  token(secret, { exp: ISSUED_AT + 3600, sub: "42", iat: ISSUED_AT }, { typ: "JWT", alg: "HS256", kid: "k1" }), null);
add("the longest lifetime allowed", "42", token(secret, claimsFor("42", MAX_AGE)), null);
add("extra claims", "42", token(secret, claimsFor("42", 3600, { iss: "acme", jti: "j-1", nbf: ISSUED_AT })), null);
add("one second too long lived", "42", token(secret, claimsFor("42", MAX_AGE + 1)), "token_too_long_lived");
add("another user's token", "42", token(secret, claimsFor("43")), "token_subject_mismatch");
add("expired", "42", token(secret, { sub: "42", iat: ISSUED_AT - 7200, exp: ISSUED_AT }), "token_expired");
add("issued in the future", "42", token(secret, { sub: "42", iat: VERIFY_AT + 120, exp: VERIFY_AT + 3600 }), "token_expired");
add("another secret", "42", token("tis_web_not-the-platform-secret-0123456789abcdef", claimsFor("42")), "no_match");
add("alg none", "42",
  `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify(claimsFor("42")))}.`, "token_malformed");
add("HS512", "42", token(secret, claimsFor("42"), { alg: "HS512", typ: "JWT" }, "sha512"), "token_malformed");
add("alg HS256 over an HS384 MAC", "42", token(secret, claimsFor("42"), undefined, "sha384"), "token_malformed");
add("no exp", "42", token(secret, { sub: "42", iat: ISSUED_AT }), "token_malformed");
add("sub a number", "42", token(secret, { sub: 42, iat: ISSUED_AT, exp: ISSUED_AT + 60 }), "token_malformed");

process.stdout.write(
  JSON.stringify(
    {
      description:
        "HS256 JSON Web Tokens computed with Node.js crypto.createHmac (key = UTF-8 bytes of " +
        "the secret) by tests/node/make-token-vectors.mjs. Verify with the clock at verifyAt " +
        "and a maximum token age of maxAge seconds; reason null means valid.",
      issuedAt: ISSUED_AT,
      verifyAt: VERIFY_AT,
      maxAge: MAX_AGE,
      vectors,
    },
    null,
    2,
  ) + "\n",
);
