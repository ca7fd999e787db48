"""Reports of a bytecode trace recording (spyglass.opcodes.Recorder):
`text` (terminal, like the seed's DummyTrace), `jsonout` (JSON),
`perfetto` (Chrome trace / Perfetto JSON) and `html` (a self-contained page
that steps through the run)."""
from spyglass.report.jsonout import to_json
from spyglass.report.perfetto import to_perfetto
from spyglass.report.text import write_text
from spyglass.report.html import to_html

__all__ = ["to_json", "to_perfetto", "write_text", "to_html"]
