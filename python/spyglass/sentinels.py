"""Values a handler can return to say more than "replace with this"."""


class _Sentinel:
    __slots__ = ("_name", "_doc")

    def __init__(self, name: str, doc: str) -> None:
        self._name = name
        self._doc = doc

    def __repr__(self) -> str:
        return f"spyglass.{self._name}"

    def __reduce__(self):
        return self._name


#: Override the value with None (returning None itself means "no override").
Null = _Sentinel("Null", "override with None")
#: Stop this tracer's remaining handlers for this event.
Skip = _Sentinel("Skip", "stop this tracer's remaining handlers")
#: Stop the remaining handlers of every tracer for this event.
SkipAll = _Sentinel("SkipAll", "stop every tracer's remaining handlers")
#: From a before_stmt handler: skip the statement.
Pass = _Sentinel("Pass", "skip the statement")
