"""The on-disk cache of instrumented code: reused across processes, keyed by
source, event plan and build; corrupt entries are ignored."""
import os
import subprocess
import sys
import textwrap


SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {path!r})
    import spyglass
    from spyglass import instrument
    class T(spyglass.BaseTracer):
        def should_instrument_file(self, f):
            return f.endswith("cached_mod.py")
        @spyglass.after_int
        def h(self, ret, *_, **__):
            return ret + 1
    hits = []
    real = instrument._cache_load
    def spy(*a):
        r = real(*a)
        hits.append(r is not None)
        return r
    instrument._cache_load = spy
    with T:
        import cached_mod
    print(cached_mod.X, hits)
    """
)


def run(tmp_path, cache):
    env = dict(os.environ, SPYGLASS_CODE_CACHE=str(cache))
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(path=str(tmp_path))], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(None, 1)


def test_second_process_reuses_the_cache_and_corruption_is_harmless(tmp_path):
    (tmp_path / "cached_mod.py").write_text("X = 41\n")
    cache = tmp_path / "cache"
    assert run(tmp_path, cache) == ["42", "[False]\n"]
    assert run(tmp_path, cache) == ["42", "[True]\n"]
    for f in cache.rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[:-7])
    assert run(tmp_path, cache) == ["42", "[False]\n"]
    # a changed source is a different entry
    (tmp_path / "cached_mod.py").write_text("X = 1\n")
    assert run(tmp_path, cache) == ["2", "[False]\n"]
