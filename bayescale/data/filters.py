"""Row filters: a small expression language over a run table's columns, parsed and checked
before anything runs.

A filter keeps the rows where an expression is true, e.g. ``"loss < 9.334 and flops >= 1e15"``.
The language has column names (``loss``; a name with spaces or other characters in backticks,
```Model Size```), numbers (``3``, ``9.334``, ``1e15``), strings in single or double quotes
(no escapes), lists of literals (``[1, 2, 'adam']``, after ``in`` / ``not in``), arithmetic
``+ - * / **`` with unary ``-``/``+``, comparisons ``< <= > >= == !=`` (chained: ``1e18 <= flops
< 1e20``), ``in`` / ``not in`` a list, ``and``, ``or``, ``not`` and parentheses. Nothing else:
no attribute access, calls, subscripts, ``@`` names, names starting with ``__`` or keywords
beyond those. The text is
tokenized and parsed by this module (it is never handed to ``eval`` or to pandas' ``query``),
and evaluated here over the table's columns as pandas Series.

Precedence, loosest first: ``or``, ``and``, ``not``, comparisons, ``+ -``, ``* /``, unary
``- +``, ``**`` (right-associative), as in Python.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Filter", "parse_filter", "filter_rows", "MAX_LENGTH", "MAX_DEPTH"]

#: The longest filter accepted, in characters.
MAX_LENGTH = 2000
#: The deepest nesting accepted (parentheses, ``not``, unary signs and powers).
MAX_DEPTH = 20

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<quoted>`[^`\n]+`)
  | (?P<name>[^\W\d]\w*)
  | (?P<op>\*\*|<=|>=|==|!=|[-+*/<>()\[\],])
""", re.VERBOSE)
_KEYWORDS = frozenset({"and", "or", "not", "in"})
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "**": operator.pow}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, op, keyword, end
    text: str
    value: object
    pos: int


@dataclass(frozen=True)
class Filter:
    """A parsed filter: apply it with :meth:`mask` or :func:`filter_rows`.

    Attributes
    ----------
    text
        The filter as written.
    columns
        The column names it reads, in order of first use.
    """

    text: str
    tree: tuple
    columns: tuple[str, ...]

    def mask(self, table: pd.DataFrame) -> pd.Series:
        """The rows of ``table`` the filter keeps, as a boolean Series on its index.

        Raises
        ------
        ValueError
            If the filter names a column ``table`` lacks (naming it and the columns there are),
            compares values that cannot be compared, or is not a condition (true or false).
        """
        for column in self.columns:
            if column not in table.columns:
                raise ValueError(f"filter {_short(self.text)} names column {column!r}, which "
                                 f"the run table lacks; its columns are {list(table.columns)}")
            if isinstance(table[column], pd.DataFrame):
                raise ValueError(f"filter {_short(self.text)} names column {column!r}, which "
                                 "the run table holds more than once")
        try:
            with np.errstate(all="ignore"):
                result = _evaluate(self.tree, table)
        except (TypeError, ValueError, ArithmeticError) as err:
            raise ValueError(f"filter {_short(self.text)} cannot be evaluated on the run "
                             f"table: {_first_line(err)}") from None
        return _as_mask(result, table, self.text)


def parse_filter(text: object) -> Filter:
    """Parse and check a filter (see the module docstring for the language).

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        If it is empty, longer than :data:`MAX_LENGTH`, nested deeper than :data:`MAX_DEPTH`
        or not an expression of the language; the message names the offending character.

    Examples
    --------
    >>> f = parse_filter("loss < 9.334 and flops >= 1e15")
    >>> f.columns
    ('loss', 'flops')
    """
    if not isinstance(text, str):
        raise TypeError(f"a filter must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"filter is {len(text)} characters long; at most {MAX_LENGTH} allowed")
    if not text.strip():
        raise ValueError("filter is empty; give a condition such as \"loss < 10\"")
    parser = _Parser(text, _tokenize(text))
    tree = parser.expression()
    parser.expect_end()
    return Filter(text=text, tree=tree, columns=tuple(dict.fromkeys(parser.names)))


def filter_rows(table: pd.DataFrame, text: str | Filter) -> pd.DataFrame:
    """The rows of ``table`` that filter ``text`` keeps (``attrs`` kept).

    >>> runs = pd.DataFrame({"loss": [3.0, 12.0], "flops": [1e18, 1e19]})
    >>> filter_rows(runs, "loss < 10")["flops"].tolist()
    [1e+18]
    """
    parsed = text if isinstance(text, Filter) else parse_filter(text)
    out = table[parsed.mask(table)]
    out.attrs.update(table.attrs)
    return out


# -- tokens and the parser ---------------------------------------------------------------------
def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"filter {_short(text)}: unexpected character {text[pos]!r} at "
                             f"position {pos}; a filter holds column names, numbers, quoted "
                             "strings, lists, + - * / **, comparisons, and/or/not/in and ()")
        kind, raw = match.lastgroup, match.group()
        if kind == "number":
            tokens.append(_Token("number", raw, float(raw), pos))
        elif kind in ("name", "quoted") and raw.strip("`").startswith("__"):
            raise ValueError(f"filter {_short(text)}: name {raw!r} at position {pos} starts "
                             "with '__'; no column may be named so in a filter")
        elif kind == "string" or kind == "quoted":
            tokens.append(_Token("string" if kind == "string" else "name", raw, raw[1:-1], pos))
        elif kind == "name":
            tokens.append(_Token("keyword" if raw in _KEYWORDS else "name", raw, raw, pos))
        elif kind == "op":
            tokens.append(_Token("op", raw, raw, pos))
        pos = match.end()
    return tokens + [_Token("end", "", None, len(text))]


class _Parser:
    """Recursive descent over the tokens; nodes are tuples ``(kind, ...)``."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text, self.tokens, self.at, self.depth = text, tokens, 0, 0
        self.names: list[str] = []

    # helpers
    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def accept(self, kind: str, text: str) -> bool:
        token = self.peek()
        if token.kind == kind and token.text == text:
            self.at += 1
            return True
        return False

    def fail(self, what: str):
        token = self.peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        raise ValueError(f"filter {_short(self.text)}: expected {what} at position "
                         f"{token.pos}, found {found}")

    def expect_end(self) -> None:
        if self.peek().kind != "end":
            self.fail("an operator or the end")

    def nested(self, parse):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"filter {_short(self.text)} is nested more than {MAX_DEPTH} "
                             "levels deep")
        try:
            return parse()
        finally:
            self.depth -= 1

    # grammar, loosest first
    def expression(self) -> tuple:
        return self.chain("or", self.conjunction)

    def conjunction(self) -> tuple:
        return self.chain("and", self.negation)

    def chain(self, word: str, parse) -> tuple:
        items = [parse()]
        while self.accept("keyword", word):
            items.append(parse())
        return items[0] if len(items) == 1 else (word, items)

    def negation(self) -> tuple:
        if self.accept("keyword", "not"):
            return ("not", self.nested(self.negation))
        return self.comparison()

    def comparison(self) -> tuple:
        first, links = self.arithmetic(), []
        while True:
            token = self.peek()
            if token.kind == "op" and token.text in _COMPARE:
                self.take()
                links.append((token.text, self.arithmetic()))
            elif self.accept("keyword", "in"):
                links.append(("in", self.literal_list()))
            elif token.kind == "keyword" and token.text == "not" and \
                    self.tokens[self.at + 1].text == "in":
                self.at += 2
                links.append(("not in", self.literal_list()))
            else:
                return first if not links else ("compare", first, links)

    def arithmetic(self) -> tuple:
        return self.operators(("+", "-"), self.product)

    def product(self) -> tuple:
        return self.operators(("*", "/"), self.unary)

    def operators(self, ops: tuple[str, ...], parse) -> tuple:
        first, rest = parse(), []
        while self.peek().kind == "op" and self.peek().text in ops:
            rest.append((self.take().text, parse()))
        return first if not rest else ("arith", first, rest)

    def unary(self) -> tuple:
        token = self.peek()
        if token.kind == "op" and token.text in ("-", "+"):
            self.take()
            return ("sign", token.text, self.nested(self.unary))
        return self.power()

    def power(self) -> tuple:
        base = self.atom()
        if self.accept("op", "**"):
            return ("arith", base, [("**", self.nested(self.unary))])
        return base

    def atom(self) -> tuple:
        token = self.take()
        if token.kind in ("number", "string"):
            return ("literal", token.value)
        if token.kind == "name":
            self.names.append(token.value)
            return ("column", token.value)
        if token.kind == "op" and token.text == "(":
            inner = self.nested(self.expression)
            if not self.accept("op", ")"):
                self.fail("')'")
            return inner
        self.at -= 1
        self.fail("a column name, a number, a quoted string or '('")

    def literal_list(self) -> tuple:
        if not self.accept("op", "["):
            self.fail("a list such as [1, 2] after 'in'")
        values = []
        while not self.accept("op", "]"):
            negative = self.accept("op", "-")
            token = self.take()
            if token.kind not in ("number", "string") or (negative and token.kind == "string"):
                self.at -= 1
                self.fail("a number or a quoted string in the list")
            values.append(-token.value if negative else token.value)
            if not self.accept("op", ","):
                if not self.accept("op", "]"):
                    self.fail("',' or ']'")
                break
        return ("list", tuple(values))


# -- evaluation ---------------------------------------------------------------------------------
def _evaluate(node: tuple, table: pd.DataFrame):
    kind = node[0]
    if kind == "literal":
        return np.float64(node[1]) if isinstance(node[1], float) else node[1]
    if kind == "column":
        return table[node[1]]
    if kind == "sign":
        value = _numeric(_evaluate(node[2], table), node[1])
        return -value if node[1] == "-" else +value
    if kind == "arith":
        value = _evaluate(node[1], table)
        for op, operand in node[2]:
            value = _ARITH[op](_numeric(value, op), _numeric(_evaluate(operand, table), op))
        return value
    if kind == "compare":
        return _compare(node, table)
    if kind == "not":
        return ~_boolean(_evaluate(node[1], table), "not")
    values = [_boolean(_evaluate(item, table), kind) for item in node[1]]
    combine = operator.and_ if kind == "and" else operator.or_
    result = values[0]
    for value in values[1:]:
        result = combine(result, value)
    return result


def _compare(node: tuple, table: pd.DataFrame):
    left, result = _evaluate(node[1], table), True
    for op, operand in node[2]:
        if op in ("in", "not in"):
            right = operand[1]
            hit = left.isin(right) if isinstance(left, pd.Series) else left in right
            step = ~hit if op == "not in" else hit
        else:
            right = _evaluate(operand, table)
            step = _COMPARE[op](left, right)
        result = step if result is True else result & step
        left = right
    return result


def _numeric(value, op: str):
    if isinstance(value, str) or (isinstance(value, pd.Series)
                                  and not pd.api.types.is_numeric_dtype(value)):
        raise TypeError(f"{op!r} needs numbers, got {_describe(value)}")
    if isinstance(value, pd.Series) and pd.api.types.is_bool_dtype(value):
        raise TypeError(f"{op!r} needs numbers, got a condition")
    return value


def _boolean(value, op: str):
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    if isinstance(value, pd.Series) and pd.api.types.is_bool_dtype(value):
        return value
    raise TypeError(f"{op!r} needs conditions (comparisons), got {_describe(value)}")


def _as_mask(result, table: pd.DataFrame, text: str) -> pd.Series:
    try:
        result = _boolean(result, "a filter")
    except TypeError:
        raise ValueError(f"filter {_short(text)} is not a condition: it gives "
                         f"{_describe(result)}, not true/false per run") from None
    if not isinstance(result, pd.Series):
        return pd.Series(bool(result), index=table.index)
    if result.dtype != bool:  # nullable booleans: a missing value keeps no row
        result = result.astype("boolean").fillna(False)
    return result.astype(bool)


def _describe(value) -> str:
    if isinstance(value, pd.Series):
        return f"column {value.name!r} of dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]
