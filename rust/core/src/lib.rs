//! leanrec core
