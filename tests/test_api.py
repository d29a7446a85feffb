"""The public API: every exported name imports, and import stays light."""

import subprocess
import sys

import assd


def test_every_name_in_all_exists():
    missing = [name for name in assd.__all__ if not hasattr(assd, name)]
    assert not missing
    assert len(set(assd.__all__)) == len(assd.__all__)


def test_import_does_not_pull_heavy_optional_packages():
    code = (
        "import sys, assd, assd.cli\n"
        "heavy = [m for m in ('matplotlib', 'pandas', 'sklearn', 'scipy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_lists_methods():
    out = subprocess.run(
        [sys.executable, "-m", "assd", "methods"], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == assd.available_methods()
