"""A tracer with one no-op handler on every event the rewriter emits."""
import spyglass
from spyglass.events import AST_EVENTS


def make_noop_tracer(events=None, name="EveryEvent", base=spyglass.BaseTracer, **attrs):
    events = sorted(AST_EVENTS if events is None else events, key=lambda e: e.index)
    ns = dict(attrs)

    def noop(self, ret, node, frame, event, **kwargs):
        return None

    for ev in events:
        fn = spyglass.register_handler(ev)(lambda self, ret, node, frame, event, **kw: None)
        fn.__name__ = fn.__qualname__ = f"{name}.on_{ev.name}"
        ns[f"on_{ev.name}"] = fn
    return type(name, (base,), ns)
