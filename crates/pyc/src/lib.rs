//! Reading CPython `.pyc` files of any version, without a live interpreter.
