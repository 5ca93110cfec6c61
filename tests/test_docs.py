"""The README keeps up with the code: every setting, every system check, every error code."""

import re
from pathlib import Path

from trusted_identity import checks
from trusted_identity.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table():
    documented = set(re.findall(r"^\| `([A-Z_]+)`", README, re.M))
    documented |= {"SECRET_PREFIX", "API_KEY_PREFIX"}  # one row for the two prefixes
    assert set(DEFAULTS) - documented == set()


def test_every_system_check_is_in_the_readme_table():
    source = Path(checks.__file__).read_text(encoding="utf-8")
    ids = set(re.findall(r'id="(trusted_identity\.[EW]\d{3})"', source))
    documented = set(re.findall(r"^\| `(trusted_identity\.[EW]\d{3})` \|", README, re.M))
    assert ids and ids == documented
