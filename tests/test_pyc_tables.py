"""The committed opcode, magic-number and Unicode tables are what
scripts/gen_opcodes.py makes from the interpreters on this machine."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from gen_opcodes import VERSIONS, find_interpreters  # noqa: E402


def test_generated_tables_are_up_to_date():
    if sys.version_info[:2] != (3, 11) and os.environ.get("SPYGLASS_PYC_CONFORMANCE") != "all":
        pytest.skip("checked once per run, in the 3.11 session")
    found = find_interpreters()
    missing = [v for v in VERSIONS if v not in found]
    if missing:
        pytest.skip("interpreters missing: %s" % missing)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_opcodes.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
