"""Specs: loading and checking them, the closed expression language, the rule vocabularies.

Public surface for other stages: :func:`parse_expression` (text -> checked :class:`Expr`, at spec load) and
:func:`evaluate` / :func:`evaluate_mask` / :func:`filter_rows` (an :class:`Expr` over a DataFrame, column-wise).
"""

from converter.spec.expr import CONSTRUCTS, Expr, check_columns, evaluate, evaluate_mask, filter_rows, parse_expression

__all__ = [
    "CONSTRUCTS",
    "Expr",
    "check_columns",
    "evaluate",
    "evaluate_mask",
    "filter_rows",
    "parse_expression",
]
