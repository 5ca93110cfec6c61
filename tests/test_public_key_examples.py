"""The public-key token examples for customer servers (docs/public-keys.md), each run by
its own runtime against the project.

Every example is read from the page, wrapped in a small harness of its language and
fed lines of ``hex(private key PEM) hex(kid) hex(user id)``, so that no language needs a
JSON parser and no user id needs escaping; it prints one token a line. Each token must
then start a trusted session on a platform holding the three public keys (and be what
PyJWT decodes with the public key: the right header, the claims, a one-hour
lifetime). Each example is run with an ES256, an EdDSA and an RS256 key (the
``jsonwebtoken`` one, which has no EdDSA, with the first and the last).

A missing runtime skips its example, unless ``CI`` is set: then it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import jwt
import pytest

from trusted_identity.publickeys import generate_key_pair
from trusted_identity.services import access, key_sources, public_keys

from .docs_snippets import all_blocks, snippet
from .test_http import assert_json, start

PAIRS = {alg: generate_key_pair(alg) for alg in ("ES256", "EdDSA", "RS256")}
KIDS = {"ES256": "ec-2026", "EdDSA": "ed-2026", "RS256": "rsa-2026"}
USER_IDS = ["42", " 42", "Zoë", "用户-🚀", 'q"\\/<&>', "tab\there", "x" * 300]

STDIN_LINES = {
    "js": """
const lines = require("fs").readFileSync(0, "utf8").split("\\n").filter(Boolean);
for (const line of lines) {
  const [pem, kid, userId] = line.split(" ").map((h) => Buffer.from(h, "hex").toString("utf8"));
  console.log(signUserToken(pem, kid, userId));
}
""",
}

HARNESSES = {
    "pk-token-node-crypto": (["node"], {"sign.cjs": "{example}\n" + STDIN_LINES["js"]}),
    "pk-token-node-jsonwebtoken": (["node"], {"sign.cjs": "{example}\n" + STDIN_LINES["js"]}),
    "pk-token-go": (
        ["go"],
        {
            "sign.go": "package main\n\n{example}",
            "main.go": """package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		parts := strings.Fields(scanner.Text())
		decoded := make([]string, 3)
		for i, part := range parts {
			raw, _ := hex.DecodeString(part)
			decoded[i] = string(raw)
		}
		token, err := SignUserToken(decoded[0], decoded[1], decoded[2], time.Hour)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(token)
	}
}
""",
        },
    ),
    "pk-token-java": (
        ["javac", "java"],
        {
            "TrustedIdentityTokens.java": "{example}",
            "Harness.java": """import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

public final class Harness {
    static String decode(String hex) {
        byte[] bytes = new byte[hex.length() / 2];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return new String(bytes, StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.trim().split(" ");
            System.out.println(TrustedIdentityTokens.signUserToken(
                decode(parts[0]), decode(parts[1]), decode(parts[2]), 3600));
        }
    }
}
""",
        },
    ),
    "pk-token-ruby": (
        ["ruby"],
        {
            "sign.rb": "{example}\n"
            + """
STDIN.each_line do |line|
  pem, kid, user_id = line.split.map { |h| [h].pack("H*").force_encoding("UTF-8") }
  puts sign_user_token(pem, kid, user_id)
end
""",
        },
    ),
    "pk-token-php": (
        ["php"],
        {
            "sign.php": "{example}",
            "main.php": """<?php
require __DIR__ . '/sign.php';
while (($line = fgets(STDIN)) !== false) {
    [$pem, $kid, $userId] = array_map('hex2bin', preg_split('/\\s+/', trim($line)));
    echo sign_user_token($pem, $kid, $userId), "\\n";
}
""",
        },
    ),
}
#: The commands that build and run each harness (the last one reads the lines).
COMMANDS = {
    "pk-token-node-crypto": [["node", "sign.cjs"]],
    "pk-token-node-jsonwebtoken": [["node", "sign.cjs"]],
    "pk-token-go": [["go", "run", "sign.go", "main.go"]],
    "pk-token-java": [
        ["javac", "-encoding", "UTF-8", "TrustedIdentityTokens.java", "Harness.java"],
        ["java", "-cp", ".", "Harness"],
    ],
    "pk-token-ruby": [["ruby", "sign.rb"]],
    "pk-token-php": [["php", "main.php"]],
}


def algorithms_of(name: str) -> list[str]:
    return ["ES256", "RS256"] if name == "pk-token-node-jsonwebtoken" else list(PAIRS)


@pytest.fixture
def keyed(platform, django_capture_on_commit_callbacks):
    """The platform holding the three public keys, taking public-key tokens."""
    cli = access.get_cli_actor()
    with django_capture_on_commit_callbacks(execute=True):
        for alg, (_, public_pem) in PAIRS.items():
            public_keys.add_public_key(platform, public_pem, cli, kid=KIDS[alg])
        key_sources.set_key_source(platform, "both", cli)
    return platform


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {reason} (.ci/run installs it)")
    pytest.skip(reason)


def assert_every_token_starts_a_trusted_session(client, platform, cases, tokens):
    assert len(tokens) == len(cases)
    for (alg, user_id), token in zip(cases, tokens, strict=True):
        assert jwt.get_unverified_header(token) == {"alg": alg, "typ": "JWT", "kid": KIDS[alg]}
        claims = jwt.decode(token, PAIRS[alg][1], algorithms=[alg])
        assert claims["sub"] == user_id and claims["exp"] - claims["iat"] == 3600
        answer = assert_json(start(client, platform.api_key, {"userId": user_id, "signed": token}))
        assert (answer["signature"], answer["trusted"]) == ("valid", True), (alg, user_id)


def test_every_public_key_example_of_the_docs_is_run_here():
    examples = {
        b.value for b in all_blocks() if b.marker == "snippet" and b.value.startswith("pk-token-")
    }
    assert examples == set(HARNESSES) | {"pk-token-python"}
    assert set(COMMANDS) == set(HARNESSES)


def test_the_python_example(client, keyed):
    namespace: dict = {}
    exec(compile(snippet("pk-token-python"), "docs/public-keys.md", "exec"), namespace)
    cases = [(alg, user_id) for alg in PAIRS for user_id in USER_IDS]
    tokens = [namespace["sign_user_token"](PAIRS[a][0], KIDS[a], u) for a, u in cases]
    assert_every_token_starts_a_trusted_session(client, keyed, cases, tokens)
    short = namespace["sign_user_token"](PAIRS["EdDSA"][0], KIDS["EdDSA"], "42", ttl=5)
    claims = jwt.decode(short, PAIRS["EdDSA"][1], algorithms=["EdDSA"])
    assert claims["exp"] - claims["iat"] == 5


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_the_documented_example(name, client, keyed, tmp_path):
    needs, files = HARNESSES[name]
    missing = [program for program in needs if shutil.which(program) is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed")
    env = {**os.environ, "GOFLAGS": "-buildvcs=false", "GO111MODULE": "off"}
    if name == "pk-token-node-jsonwebtoken":
        found = subprocess.run(
            ["node", "-e", "require.resolve('jsonwebtoken')"], env=env, capture_output=True
        )
        if found.returncode != 0:
            skip_or_fail("jsonwebtoken is not installed (npm install jsonwebtoken; NODE_PATH)")
    code = snippet(name)
    for file_name, template in files.items():
        (tmp_path / file_name).write_text(template.replace("{example}", code), encoding="utf-8")
    cases = [(alg, user_id) for alg in algorithms_of(name) for user_id in USER_IDS]
    stdin = "".join(
        f"{PAIRS[a][0].encode().hex()} {KIDS[a].encode().hex()} {u.encode().hex()}\n"
        for a, u in cases
    )
    *build, run = COMMANDS[name]
    for command in build:
        subprocess.run(command, cwd=tmp_path, check=True, timeout=180, env=env)
    done = subprocess.run(
        run, cwd=tmp_path, input=stdin.encode(), capture_output=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    tokens = done.stdout.decode().split()
    assert_every_token_starts_a_trusted_session(client, keyed, cases, tokens)
