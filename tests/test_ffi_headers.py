"""The C declarations spyglass writes by hand (crates/native/src/ffi_extra.rs)
checked against the headers of the running interpreter, when it has them."""
import os
import re
import sys
import sysconfig

import pytest

V = sys.version_info[:2]


def header_text(name):
    include = sysconfig.get_paths().get("include") or sysconfig.get_config_var("INCLUDEPY") or ""
    path = os.path.join(include, name)
    if not os.path.exists(path):
        pytest.skip(f"this interpreter has no {name} headers ({path})")
    with open(path, encoding="utf-8") as f:
        # whitespace and line continuations carry no meaning here
        return re.sub(r"[\s\\]+", "", f.read())


def squash(text):
    return re.sub(r"\s+", "", text)


EXPECTED = [
    # (header, declaration, versions)
    ("cpython/code.h", "PyAPI_FUNC(int) PyCode_Addr2Location(PyCodeObject *, int, int *, int *, int *, int *);", (3, 11)),
    ("cpython/code.h", "PyAPI_FUNC(PyObject *) PyCode_GetCode(PyCodeObject *code);", (3, 11)),
    ("cpython/code.h", "PyAPI_FUNC(PyObject *) PyCode_GetVarnames(PyCodeObject *code);", (3, 11)),
    ("cpython/code.h", "PyAPI_FUNC(PyObject *) PyCode_GetCellvars(PyCodeObject *code);", (3, 11)),
    ("cpython/code.h", "PyAPI_FUNC(PyObject *) PyCode_GetFreevars(PyCodeObject *code);", (3, 11)),
    ("cpython/code.h", "typedef int (*PyCode_WatchCallback)(PyCodeEvent event, PyCodeObject* co);", (3, 12)),
    ("cpython/code.h", "PyAPI_FUNC(int) PyCode_AddWatcher(PyCode_WatchCallback callback);", (3, 12)),
    ("cpython/code.h", "PyAPI_FUNC(int) PyCode_ClearWatcher(int watcher_id);", (3, 12)),
    # exactly two events, CREATE = 0 then DESTROY = 1
    ("cpython/code.h", "#define PY_FOREACH_CODE_EVENT(V) V(CREATE) V(DESTROY) typedef enum {", (3, 12)),
    ("cpython/pyerrors.h", "PyAPI_FUNC(void) PyErr_FormatUnraisable(const char *, ...);", (3, 13)),
]
ONLY_BEFORE = [
    ("cpython/pyerrors.h", "PyAPI_FUNC(void) _PyErr_WriteUnraisableMsg(const char *err_msg, PyObject *obj);", (3, 13)),
    ("cpython/sysmodule.h", "typedef int(*Py_AuditHookFunction)(const char *, PyObject *, void *);", (3, 12)),
    ("cpython/sysmodule.h", "PyAPI_FUNC(int) PySys_AddAuditHook(Py_AuditHookFunction, void*);", (3, 12)),
]


def ident(entry):
    """The declared name, for the test id."""
    decl = entry[1]
    found = (re.search(r"#define (\w+)", decl) or re.search(r"\(\*(\w+)\)", decl)
             or re.search(r"\)\s*(\w+)\s*\(", decl))
    return found.group(1)


@pytest.mark.parametrize("header,declaration,since", EXPECTED, ids=[ident(d) for d in EXPECTED])
def test_declaration_matches_header(header, declaration, since):
    if V < since:
        pytest.skip(f"not used before {since[0]}.{since[1]}")
    assert squash(declaration) in header_text(header)


@pytest.mark.parametrize("header,declaration,until", ONLY_BEFORE, ids=[ident(d) for d in ONLY_BEFORE])
def test_declaration_used_before(header, declaration, until):
    if V >= until:
        pytest.skip(f"not used from {until[0]}.{until[1]}")
    assert squash(declaration) in header_text(header)
