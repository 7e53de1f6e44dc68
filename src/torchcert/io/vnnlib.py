"""VNN-LIB properties: parse (a small s-expression reader, nothing evaluated) and write.

A VNN-LIB file declares inputs ``X_i`` and outputs ``Y_j`` and asserts a **counterexample**: the conjunction of
all its ``assert`` s, each a formula of ``and``/``or`` over linear (in)equalities (``<=``, ``>=``, ``<``, ``>``,
``=``) of variables and numbers (``+``, ``-``, ``*`` by a number). It is brought to disjunctive normal form
``OR_k (box_k AND A_k y + b_k >= 0)``: a disjunct is an input box (the bounds on ``X`` in every assert and in the
disjunct itself) and the output rows ``A_k (m_k, K)``, ``b_k (m_k,)``. The property **holds** (``unsat``) when every
disjunct is infeasible: for all ``x`` in ``box_k`` some margin of ``C_k f(x) + d_k`` is positive, where
``C_k = -A_k``, ``d_k = -b_k`` (:meth:`Disjunct.margins`). Strict and non-strict comparisons are read alike (a
counterexample is accepted only with strictly negative margins, so both readings agree on it).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .files import read_text

Expr = Union[str, list]
#: a linear form: coefficients by variable name, and a constant
Linear = Tuple[Dict[str, float], float]
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_VAR = re.compile(r"^([XY])_(\d+)$")


@dataclass(frozen=True)
class Disjunct:
    """One conjunction of the counterexample: input box ``lower/upper (n,)`` and output rows ``A y + b >= 0``
    (``A (m, K)``, ``b (m,)``), all float64."""

    lower: Tensor
    upper: Tensor
    A: Tensor
    b: Tensor

    def margins(self) -> Tuple[Tensor, Tensor]:
        """``(C, d)`` with ``C = -A``, ``d = -b``: the disjunct is infeasible iff ``max_j (C f(x) + d)_j > 0``
        everywhere on the box; a point with every ``(C y + d)_j < 0`` (strictly) is a counterexample."""
        return -self.A, -self.b

    def contains(self, x: Tensor) -> bool:
        """Whether ``x (n,)`` (any dtype, compared exactly in float64) lies in the box."""
        x = x.detach().reshape(-1).to(torch.float64).cpu()
        return bool(((x >= self.lower) & (x <= self.upper)).all())

    def satisfied_by(self, x: Tensor, y: Tensor) -> bool:
        """``x`` in the box and every margin ``(C y + d)_j`` strictly negative (``y (K,)`` taken in float64)."""
        C, d = self.margins()
        values = C @ y.detach().reshape(-1).to(torch.float64).cpu() + d
        return self.contains(x) and bool((values < 0).all())


@dataclass(frozen=True)
class Property:
    """A parsed VNN-LIB property: ``num_inputs`` X's, ``num_outputs`` Y's, the disjuncts of its counterexample."""

    num_inputs: int
    num_outputs: int
    disjuncts: Tuple[Disjunct, ...]

    def counterexample_disjunct(self, x: Tensor, y: Tensor) -> Optional[int]:
        """Index of a disjunct that ``(x, y)`` satisfies (module docstring), or None."""
        return next((k for k, dj in enumerate(self.disjuncts) if dj.satisfied_by(x, y)), None)


def tokenize(text: str) -> List[str]:
    """Parentheses and atoms; ``;`` comments dropped."""
    return _TOKEN.findall(re.sub(r";[^\n]*", " ", text))


def read_sexprs(tokens: Sequence[str]) -> List[Expr]:
    """The top-level s-expressions of a token list (nested lists of atoms); ValueError on unbalanced input."""
    stack: List[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise ValueError("VNN-LIB: unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise ValueError("VNN-LIB: unbalanced '(' (file truncated?)")
    return stack[0]


def load_vnnlib(path: Union[str, Path]) -> Property:
    """Parse a VNN-LIB file (plain or gzipped, named with or without ``.gz``)."""
    try:
        return parse_vnnlib(read_text(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def parse_vnnlib(text: str) -> Property:
    """Parse VNN-LIB text (module docstring)."""
    names: Dict[str, int] = {"X": 0, "Y": 0}
    plain: List[Expr] = []  # asserts that are a conjunction of atoms: shared by every disjunct
    formulas: List[List[List[Expr]]] = []  # the other asserts, each in DNF
    for form in read_sexprs(tokenize(text)):
        if not isinstance(form, list) or not form:
            raise ValueError(f"VNN-LIB: unexpected top-level {form!r}")
        head = form[0]
        if head == "declare-const" and len(form) == 3:
            kind, index = _variable(form[1])
            names[kind] = max(names[kind], index + 1)
        elif head == "assert" and len(form) == 2:
            dnf = _dnf(form[1])
            if len(dnf) == 1:
                plain.extend(dnf[0])
            else:
                formulas.append(dnf)
        else:
            raise ValueError(f"VNN-LIB: supported top-level forms are declare-const and assert; got ({head} ...)")
    if names["X"] == 0 or names["Y"] == 0:
        raise ValueError("VNN-LIB: no X_i or no Y_j declared")
    base = _Conjunction(names["X"]).add(plain)
    disjuncts = []
    for choice in itertools.product(*formulas):
        dj = base.copy().add([atom for conj in choice for atom in conj]).finish(names["Y"])
        if dj is not None:
            disjuncts.append(dj)
    return Property(names["X"], names["Y"], tuple(disjuncts))


def _variable(name: Expr) -> Tuple[str, int]:
    match = _VAR.match(name) if isinstance(name, str) else None
    if not match:
        raise ValueError(f"VNN-LIB: variables must be named X_i or Y_j; got {name!r}")
    return match.group(1), int(match.group(2))


_COMPARISONS = ("<=", ">=", "<", ">", "=")


def _dnf(expr: Expr) -> List[List[Expr]]:
    """``expr`` as a list of conjunctions (lists) of comparison atoms."""
    if not isinstance(expr, list) or not expr:
        raise ValueError(f"VNN-LIB: expected a formula, got {expr!r}")
    head, args = expr[0], expr[1:]
    if head == "or":
        return [conj for arg in args for conj in _dnf(arg)]
    if head == "and":
        common: List[Expr] = []  # arguments that are one conjunction are concatenated, the others crossed
        out: List[List[Expr]] = [[]]
        for arg in args:
            dnf = _dnf(arg)
            if len(dnf) == 1:
                common.extend(dnf[0])
            else:
                out = [a + b for a in out for b in dnf]
        return [common + conj for conj in out]
    if head in _COMPARISONS and len(args) == 2:
        return [[expr]]
    raise ValueError(f"VNN-LIB: supported formulas are and, or and the comparisons {', '.join(_COMPARISONS)} of "
                     f"two terms; got ({head} ...)")


def _linear(expr: Expr) -> Linear:
    """A term as a linear form: a number, a variable, ``(+ t ...)``, ``(- t)``, ``(- t u ...)``, ``(* c t)``."""
    if isinstance(expr, str):
        if _VAR.match(expr):
            return {expr: 1.0}, 0.0
        try:
            return {}, float(expr)
        except ValueError:
            raise ValueError(f"VNN-LIB: {expr!r} is neither a number nor a variable X_i / Y_j") from None
    head, parts = expr[0], [_linear(e) for e in expr[1:]]
    if head == "+" and parts:
        return _combine(parts, [1.0] * len(parts))
    if head == "-" and parts:
        signs = [-1.0] if len(parts) == 1 else [1.0] + [-1.0] * (len(parts) - 1)
        return _combine(parts, signs)
    if head == "*" and len(parts) == 2 and (not parts[0][0] or not parts[1][0]):
        (c_coef, c), term = (parts[0], parts[1]) if not parts[0][0] else (parts[1], parts[0])
        return {v: c * a for v, a in term[0].items()}, c * term[1]
    raise ValueError(f"VNN-LIB: unsupported term ({head} ...): linear terms (+, -, * by a number) only")


def _combine(parts: Sequence[Linear], signs: Sequence[float]) -> Linear:
    coef: Dict[str, float] = {}
    const = 0.0
    for (c, k), s in zip(parts, signs):
        for v, a in c.items():
            coef[v] = coef.get(v, 0.0) + s * a
        const += s * k
    return coef, const


def _atoms_geq(atom: list) -> List[Linear]:
    """A comparison as linear forms ``g >= 0`` (``=`` gives two)."""
    op, left, right = atom
    lhs, rhs = _linear(left), _linear(right)
    diff = _combine([lhs, rhs], [1.0, -1.0])
    neg = _combine([diff], [-1.0])
    return {"<=": [neg], "<": [neg], ">=": [diff], ">": [diff], "=": [diff, neg]}[op]


class _Conjunction:
    """Accumulates the atoms of one conjunction: the input box (Python floats) and the output rows."""

    def __init__(self, n_in: int) -> None:
        self.lower, self.upper = [-float("inf")] * n_in, [float("inf")] * n_in
        self.rows: List[Linear] = []
        self.empty = False  # a false constant comparison

    def copy(self) -> "_Conjunction":
        other = _Conjunction(0)
        other.lower, other.upper, other.rows, other.empty = list(self.lower), list(self.upper), list(self.rows), \
            self.empty
        return other

    def add(self, atoms: Sequence[Expr]) -> "_Conjunction":
        for atom in atoms:
            for coef, const in _atoms_geq(atom):
                coef = {v: a for v, a in coef.items() if a != 0.0}
                kinds = {v[0] for v in coef}
                if kinds == {"X"}:
                    self._bound_input(coef, const)
                elif kinds == {"Y"}:
                    self.rows.append((coef, const))
                elif kinds:
                    raise ValueError("VNN-LIB: a constraint mixing X and Y variables is not supported")
                elif const < 0:
                    self.empty = True
        return self

    def _bound_input(self, coef: Dict[str, float], const: float) -> None:
        """``a X_i + c >= 0`` with ``a = +-1``: ``X_i >= -c`` or ``X_i <= c``; the box is intersected."""
        if len(coef) != 1 or abs(next(iter(coef.values()))) != 1.0:
            raise ValueError("VNN-LIB: input constraints must be bounds X_i >= c / X_i <= c; got a linear "
                             "combination")
        (name, a), = coef.items()
        i = _index(name, len(self.lower))
        if a > 0:
            self.lower[i] = max(self.lower[i], -const)
        else:
            self.upper[i] = min(self.upper[i], const)

    def finish(self, n_out: int) -> Optional[Disjunct]:
        """The disjunct; None when it is empty (its box is empty or a constant comparison is false)."""
        lower = torch.tensor(self.lower, dtype=torch.float64)
        upper = torch.tensor(self.upper, dtype=torch.float64)
        unbounded = (~(torch.isfinite(lower) & torch.isfinite(upper))).nonzero()
        if unbounded.numel():
            raise ValueError(f"VNN-LIB: input X_{int(unbounded[0])} has no lower or no upper bound; a bounded box "
                             "is needed")
        if self.empty or bool((lower > upper).any()):
            return None
        A = torch.zeros((len(self.rows), n_out), dtype=torch.float64)
        b = torch.zeros(len(self.rows), dtype=torch.float64)
        for i, (coef, const) in enumerate(self.rows):
            for v, a in coef.items():
                A[i, _index(v, n_out)] += a
            b[i] = const
        return Disjunct(lower, upper, A, b)


def _index(name: str, size: int) -> int:
    kind, index = _variable(name)
    if index >= size:
        raise ValueError(f"VNN-LIB: {name} is used but only {size} {kind}'s are declared")
    return index


def robustness_property(lower: Tensor, upper: Tensor, label: int, num_classes: int, comment: str = "") -> str:
    """VNN-LIB text of local robustness on the box ``lower/upper`` (flattened, C order): the counterexample is
    ``OR_{j != label} Y_j >= Y_label``. Bounds are written with ``repr`` of the float64 values (exact)."""
    lo = lower.detach().reshape(-1).to(torch.float64).tolist()
    hi = upper.detach().reshape(-1).to(torch.float64).tolist()
    lines = [f"; {comment}"] if comment else []
    lines += [f"(declare-const X_{i} Real)" for i in range(len(lo))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(num_classes)]
    for i, (a, b) in enumerate(zip(lo, hi)):
        lines += [f"(assert (<= X_{i} {b!r}))", f"(assert (>= X_{i} {a!r}))"]
    others = [f"    (and (>= Y_{j} Y_{label}))" for j in range(num_classes) if j != label]
    lines += ["(assert (or", *others, "))"]
    return "\n".join(lines) + "\n"


def result_text(result: str, x: Optional[Tensor] = None, y: Optional[Tensor] = None) -> str:
    """A VNN-COMP result file: the verdict on the first line; for ``sat`` the witness ``((X_0 v) ... (Y_0 v) ...)``
    with every value written by ``repr`` of its float64 value (exact for the network's float32 values)."""
    if result != "sat":
        return result + "\n"
    if x is None or y is None:
        raise ValueError("a sat result needs its witness x and y")
    pairs = [f"(X_{i} {v!r})" for i, v in enumerate(x.detach().reshape(-1).double().tolist())]
    pairs += [f"(Y_{j} {v!r})" for j, v in enumerate(y.detach().reshape(-1).double().tolist())]
    return "sat\n(" + "\n ".join(pairs) + ")\n"
