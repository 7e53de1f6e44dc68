"""VNN-LIB reading: hand-written forms (every form the shared files use, and the errors), one shared file per
benchmark folder and every test property, gz/plain/suffix-less paths, the robustness writer and result files."""
from __future__ import annotations

import gzip

import pytest
import torch

from io_helpers import VNNCOMP, shared_files, vnncomp_path
from torchcert.io.vnnlib import (load_vnnlib, parse_vnnlib, read_sexprs, result_text, robustness_property,
                                 tokenize)

HEADER = "".join(f"(declare-const X_{i} Real)\n" for i in range(2)) + \
    "".join(f"(declare-const Y_{j} Real)\n" for j in range(3))
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1.5))\n(assert (<= X_1 0.25)) (assert (>= X_1 0))\n"


def test_tokenizer_drops_comments_and_reads_nesting():
    tokens = tokenize("; a comment (with parens\n(assert (or (and (>= Y_1 Y_0))))  ; trailing\n")
    assert tokens == ["(", "assert", "(", "or", "(", "and", "(", ">=", "Y_1", "Y_0", ")", ")", ")", ")"]
    assert read_sexprs(tokens) == [["assert", ["or", ["and", [">=", "Y_1", "Y_0"]]]]]
    with pytest.raises(ValueError, match="unbalanced"):
        read_sexprs(tokenize("(assert (<= X_0 1)"))


def test_or_of_and_with_ge_is_one_row_per_disjunct():
    prop = parse_vnnlib(HEADER + BOX + "(assert (or (and (>= Y_1 Y_0)) (and (>= Y_2 Y_0))))")
    assert (prop.num_inputs, prop.num_outputs, len(prop.disjuncts)) == (2, 3, 2)
    first = prop.disjuncts[0]
    assert first.lower.tolist() == [-1.0, 0.0] and first.upper.tolist() == [1.5, 0.25]
    C, d = first.margins()  # holds when Y_0 - Y_1 > 0
    assert C.tolist() == [[1.0, -1.0, 0.0]] and d.tolist() == [0.0]


def test_le_form_and_constants_on_either_side():
    prop = parse_vnnlib(HEADER + BOX + "(assert (or (and (<= Y_0 Y_2)) (and (<= 3 Y_1)) (and (>= -2 Y_0))))")
    rows = [(dj.margins()[0].tolist()[0], float(dj.margins()[1][0])) for dj in prop.disjuncts]
    assert rows == [([1.0, 0.0, -1.0], 0.0), ([0.0, -1.0, 0.0], 3.0), ([1.0, 0.0, 0.0], 2.0)]


def test_several_top_level_asserts_are_one_conjunction():
    prop = parse_vnnlib(HEADER + BOX + "(assert (<= Y_0 Y_1))\n(assert (<= Y_0 Y_2))\n")
    assert len(prop.disjuncts) == 1
    assert prop.disjuncts[0].A.tolist() == [[-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]
    y = torch.tensor([0.0, 1.0, 2.0])
    assert prop.counterexample_disjunct(torch.tensor([0.0, 0.1]), y) == 0  # Y_0 below both: a counterexample
    assert prop.counterexample_disjunct(torch.tensor([2.0, 0.1]), y) is None  # outside the box
    assert prop.counterexample_disjunct(torch.tensor([0.0, 0.1]), torch.tensor([1.0, 1.0, 2.0])) is None  # a tie


def test_input_bounds_inside_disjuncts_and_linear_terms():
    text = HEADER + "(assert (or (and (>= X_0 -1) (<= X_0 1) (>= X_1 0) (<= X_1 1) (>= Y_0 100))\n" \
                    "            (and (>= X_0 0) (<= X_0 2) (>= X_1 0) (<= X_1 1) (<= (+ Y_1 (* 2 Y_2)) (- 1)))))"
    prop = parse_vnnlib(text)
    a, b = prop.disjuncts
    assert a.lower.tolist() == [-1.0, 0.0] and b.upper.tolist() == [2.0, 1.0]
    assert b.A.tolist() == [[0.0, -1.0, -2.0]] and b.b.tolist() == [-1.0]


def test_empty_box_drops_the_disjunct_and_and_of_or_is_distributed():
    text = HEADER + BOX + "(assert (and (or (>= Y_0 1) (>= Y_1 1)) (or (>= Y_2 1) (>= X_0 5))))"
    prop = parse_vnnlib(text)
    assert len(prop.disjuncts) == 2  # the two with X_0 >= 5 are empty (X_0 <= 1.5)
    assert all(dj.A.shape[0] == 2 for dj in prop.disjuncts)


@pytest.mark.parametrize("text,message", [
    (HEADER + "(assert (<= X_0 1))", "X_0 has no lower"),
    (HEADER + BOX + "(assert (>= (+ X_0 Y_0) 1))", "mixing X and Y"),
    (HEADER + BOX + "(assert (>= (* Y_0 Y_1) 1))", "linear terms"),
    (HEADER + BOX + "(assert (>= Y_7 1))", "Y_7 is used but only 3"),
    (HEADER + BOX + "(check-sat)", "declare-const and assert"),
    (HEADER + BOX + "(assert (>= (+ X_0 X_1) 1))", "bounds X_i >= c"),
    (HEADER + BOX + "(assert (>= Y_0 (exp 1)))", "unsupported term"),
])
def test_errors_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_vnnlib(text)


def _one_per_folder():
    seen, picked = set(), []
    for name in shared_files("**/*.vnnlib.gz"):
        folder = name.rsplit("/", 1)[0]
        if folder not in seen or "/test/" in name:
            seen.add(folder)
            picked.append(name)
    return picked


@pytest.mark.parametrize("name", _one_per_folder() or ["(shared folder absent)"])
def test_shared_properties_parse(name):
    prop = load_vnnlib(vnncomp_path(name))
    assert prop.disjuncts and prop.num_inputs >= 1
    for dj in prop.disjuncts:
        assert bool((dj.lower <= dj.upper).all()) and dj.A.shape == (dj.A.shape[0], prop.num_outputs)
        assert bool((dj.A != 0).any(dim=1).all())  # every row constrains some output
    if prop.num_inputs in (784, 3072):  # the robustness properties: 9 one-row disjuncts Y_j >= Y_label
        assert len(prop.disjuncts) == 9 and all(dj.A.shape[0] == 1 for dj in prop.disjuncts)
        assert {float(dj.A.sum()) for dj in prop.disjuncts} == {0.0}


def test_gz_plain_and_suffixless(tmp_path):
    source = vnncomp_path("2021", "test", "test_prop.vnnlib.gz")
    plain = tmp_path / "p.vnnlib"
    plain.write_bytes(gzip.decompress(source.read_bytes()))
    (tmp_path / "z.vnnlib.gz").write_bytes(source.read_bytes())
    a, b, c = load_vnnlib(plain), load_vnnlib(tmp_path / "z.vnnlib"), load_vnnlib(source)
    for x, y in ((a, b), (a, c)):
        assert torch.equal(x.disjuncts[0].A, y.disjuncts[0].A) and torch.equal(x.disjuncts[0].lower, y.disjuncts[0].lower)
    assert VNNCOMP.is_dir()


def test_robustness_property_round_trips_exactly():
    lower = torch.tensor([[0.1, 0.2], [0.0, 1 / 3]], dtype=torch.float64)
    upper = lower + 0.05
    prop = parse_vnnlib(robustness_property(lower, upper, 2, 4, "a comment"))
    assert len(prop.disjuncts) == 3
    assert torch.equal(prop.disjuncts[0].lower, lower.reshape(-1)) and torch.equal(prop.disjuncts[0].upper,
                                                                                   upper.reshape(-1))
    assert [dj.margins()[0].tolist()[0] for dj in prop.disjuncts] == [[-1, 0, 1, 0], [0, -1, 1, 0], [0, 0, 1, -1]]


def test_result_text():
    assert result_text("unsat") == "unsat\n"
    text = result_text("sat", torch.tensor([0.5, 0.1], dtype=torch.float32), torch.tensor([1.0, -2.0]))
    assert text.splitlines()[0] == "sat"
    body = read_sexprs(tokenize(text.split("\n", 1)[1]))[0]
    assert body[0] == ["X_0", "0.5"] and body[-1] == ["Y_1", "-2.0"]
    assert float(body[1][1]) == float(torch.tensor(0.1, dtype=torch.float32))  # float32 written exactly
