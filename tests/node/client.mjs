// An independent client: signs user ids with Node's crypto, as the product docs
// show, and starts sessions over real HTTP. Reads a JSON plan on stdin and
// prints one JSON result per request on stdout.
import crypto from "node:crypto";

const sign = (secret, userId) =>
  crypto.createHmac("sha256", secret).update(userId).digest("hex");

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const plan = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const results = [];
for (const step of plan.steps) {
  const body = {};
  if (step.userId !== undefined) body.userId = step.userId;
  if (step.signWith !== undefined) body.signed = sign(step.signWith, step.userId);
  if (step.signed !== undefined) body.signed = step.signed;
  if (step.upper) body.signed = body.signed.toUpperCase();
  const response = await fetch(`${plan.baseUrl}/trusted-identity/v1/sessions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Api-Key": step.apiKey },
    body: JSON.stringify(body),
  });
  results.push({
    name: step.name,
    status: response.status,
    contentType: response.headers.get("content-type"),
    body: await response.json(),
    signed: body.signed ?? null,
  });
}
process.stdout.write(JSON.stringify(results));
