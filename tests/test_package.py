import sys

import spyglass


def test_native_module_matches_package():
    from spyglass import _native

    assert spyglass.__version__ == _native.__version__
    # the extension must be built for this very interpreter (no abi3)
    assert f"cpython-{sys.version_info[0]}{sys.version_info[1]}" in _native.__file__
