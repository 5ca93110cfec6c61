"""The signing examples for customer servers (docs/signing.md), each run by its own
runtime.

Every example is read from the page (so the documentation and this test can't
drift apart), wrapped in a small harness of its language, and run against every
vector of ``tests/data/node-hmac-sha256.json``. The harness reads one vector a line,
``hex(UTF-8 secret) hex(UTF-8 user id)``, so that no language needs a JSON parser
and no user id needs escaping, and prints one signature a line.

A missing runtime skips its example, unless ``CI`` is set (``.ci/run`` installs
Debian's ``ruby``, ``golang-go``, ``default-jdk-headless`` and ``php-cli``): then it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .docs_snippets import all_blocks, snippet

# Other languages' programs, no database, no Python but this harness.
pytestmark = [pytest.mark.any_database, pytest.mark.one_version]

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "tests" / "data" / "node-hmac-sha256.json").read_text("utf-8"))[
    "vectors"
]


#: The snippet of each language's example, by the language its block is marked with.
SNIPPETS = {
    "js": "sign-node",
    "python": "sign-python",
    "ruby": "sign-ruby",
    "go": "sign-go",
    "java": "sign-java",
    "php": "sign-php",
}


def example(language: str) -> str:
    return snippet(SNIPPETS[language])


HARNESSES = {
    "js": (
        ["node"],
        {
            "sign.cjs": "{example}\n"
            + """
const lines = require("fs").readFileSync(0, "utf8").split("\\n").filter(Boolean);
for (const line of lines) {
  const [secret, userId] = line.split(" ").map((h) => Buffer.from(h, "hex").toString("utf8"));
  process.env.TRUSTED_IDENTITY_SECRET = secret;
  console.log(signUserId(userId));
}
""",
        },
        [["node", "sign.cjs"]],
    ),
    "python": (
        [sys.executable],
        {
            "sign.py": "{example}\n"
            + """
import sys

for line in sys.stdin.read().splitlines():
    secret, user_id = (bytes.fromhex(h).decode() for h in line.split())
    print(sign_user_id(secret, user_id))
""",
        },
        [[sys.executable, "sign.py"]],
    ),
    "ruby": (
        ["ruby"],
        {
            "sign.rb": "{example}\n"
            + """
STDIN.each_line do |line|
  secret, user_id = line.split.map { |h| [h].pack("H*").force_encoding("UTF-8") }
  puts sign_user_id(secret, user_id)
end
""",
        },
        [["ruby", "sign.rb"]],
    ),
    "go": (
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
)

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		parts := strings.Fields(scanner.Text())
		secret, _ := hex.DecodeString(parts[0])
		userID, _ := hex.DecodeString(parts[1])
		fmt.Println(SignUserID(string(secret), string(userID)))
	}
}
""",
        },
        [["go", "run", "sign.go", "main.go"]],
    ),
    "java": (
        ["javac", "java"],
        {
            "TrustedIdentity.java": "{example}",
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
            System.out.println(TrustedIdentity.signUserId(decode(parts[0]), decode(parts[1])));
        }
    }
}
""",
        },
        [
            ["javac", "-encoding", "UTF-8", "TrustedIdentity.java", "Harness.java"],
            ["java", "-cp", ".", "Harness"],
        ],
    ),
    "php": (
        ["php"],
        {
            "sign.php": "{example}",
            "main.php": """<?php
require __DIR__ . '/sign.php';
while (($line = fgets(STDIN)) !== false) {
    [$secret, $userId] = array_map('hex2bin', preg_split('/\\s+/', trim($line)));
    echo sign_user_id($secret, $userId), "\\n";
}
""",
        },
        [["php", "main.php"]],
    ),
}


def test_every_signing_example_of_the_docs_is_run_here():
    """Every ``sign-*`` snippet is one of these, in the language its block says."""
    examples = {
        block.value: block.language
        for block in all_blocks()
        if block.marker == "snippet"
        and block.value.startswith("sign-")
        and block.value != "sign-user-id-view"  # Django, not a server's own signer
    }
    assert examples == {name: language for language, name in SNIPPETS.items()}
    assert set(HARNESSES) == set(SNIPPETS)


@pytest.mark.parametrize("language", sorted(HARNESSES))
def test_the_documented_example_matches_every_node_vector(language, tmp_path):
    needs, files, commands = HARNESSES[language]
    missing = [program for program in needs if shutil.which(program) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason} (.ci/run installs it)")
        pytest.skip(reason)
    code = example(language)
    for name, template in files.items():
        (tmp_path / name).write_text(template.replace("{example}", code), encoding="utf-8")
    stdin = "".join(f"{v['secret'].encode().hex()} {v['userId'].encode().hex()}\n" for v in VECTORS)
    env = {**os.environ, "GOFLAGS": "-buildvcs=false", "GO111MODULE": "off"}
    for command in commands[:-1]:
        subprocess.run(command, cwd=tmp_path, check=True, timeout=120, env=env)
    completed = subprocess.run(
        commands[-1],
        cwd=tmp_path,
        input=stdin.encode(),
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    signatures = completed.stdout.decode().split()
    assert len(signatures) == len(VECTORS) == 10
    for vector, signature in zip(VECTORS, signatures, strict=True):
        assert signature == vector["signed"], (language, vector["userId"])
