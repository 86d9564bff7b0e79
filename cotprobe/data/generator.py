"""Generated integer arithmetic: expressions and word problems at five levels of difficulty."""

from __future__ import annotations

import random
from dataclasses import dataclass

from cotprobe.records import Question

from .questions import DatasetError

_LEVEL_NAMES = {"easy": 1, "medium": 3, "hard": 5}
_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi",
          "Lena", "Mateo", "Nia", "Omar", "Priya"]
_ITEMS = ["apples", "pencils", "marbles", "books", "stickers", "cookies", "bottles", "cards",
          "shells", "tickets"]


@dataclass(frozen=True)
class _Level:
    """How hard one arithmetic level is."""

    terms: tuple[int, int]  # number of operands in an expression (min, max)
    lo: int  # operand range
    hi: int
    ops: str  # allowed operators among '+-*'
    factor_hi: int  # the right operand of a multiplication is 2..factor_hi
    words: float  # share of word problems
    steps: int  # steps of a word problem (1-4)


_LEVELS = {
    1: _Level((2, 2), 1, 9, "+", 9, 0.0, 1),
    2: _Level((2, 2), 10, 99, "+-", 9, 0.0, 1),
    3: _Level((3, 3), 2, 99, "+-*", 9, 0.3, 1),
    4: _Level((3, 4), 10, 999, "+-*", 19, 0.5, 2),
    5: _Level((4, 4), 100, 9999, "+-*", 99, 0.7, 4),
}


def _parse_level(difficulty: int | str) -> int:
    text = str(difficulty).strip().lower()
    level = _LEVEL_NAMES.get(text) or (int(text) if text.isdigit() else 0)
    if level not in _LEVELS:
        raise DatasetError(
            f"arithmetic: unknown difficulty {difficulty!r} (use 1-5 or easy/medium/hard)"
        )
    return level


def arithmetic(n: int, difficulty: int | str = 3, seed: int = 0) -> list[Question]:
    """`n` generated arithmetic questions with exact integer answers (kind 'numeric').

    Level 1: single-digit addition. 2: two-digit addition/subtraction. 3: three operands with
    multiplication, some one-step word problems. 4: three-digit numbers, 3-4 operands,
    parentheses, two-step word problems. 5: multi-step word problems and long expressions with
    3-4 digit numbers. Deterministic for a given (n, difficulty, seed); the first k questions
    do not depend on n.
    """
    level = _parse_level(difficulty)
    if n < 0:
        raise DatasetError(f"arithmetic: n must be >= 0, got {n}")
    spec = _LEVELS[level]
    rng = random.Random(f"cotprobe-arithmetic/{level}/{seed}")
    questions = []
    for i in range(1, n + 1):
        is_word = rng.random() < spec.words
        text, value = _word_problem(rng, spec) if is_word else _expression(rng, spec)
        questions.append(
            Question(
                id=f"arith-{level}-{seed}-{i:04d}",
                question=text,
                answer=str(value),
                kind="numeric",
                subject="arithmetic",
                source="cotprobe-arithmetic",
                meta={"difficulty": level, "seed": seed, "form": "word" if is_word else "expr"},
            )
        )
    return questions


def _expression(rng: random.Random, spec: _Level) -> tuple[str, int]:
    """'What is 23 × 4 + 57?' with a non-negative integer value (Python precedence)."""
    while True:
        count = rng.randint(*spec.terms)
        parts = [str(rng.randint(spec.lo, spec.hi))]
        ops = spec.ops
        for _ in range(count - 1):
            op = rng.choice(ops)
            ops = ops.replace("*", "") if op == "*" else ops  # at most one multiplication
            hi = spec.factor_hi if op == "*" else spec.hi
            parts += [op, str(rng.randint(2 if op == "*" else spec.lo, hi))]
        if count >= 3 and parts[1] in "+-" and parts[3] == "*" and spec.hi >= 999:
            parts = ["(", *parts[:3], ")", *parts[3:]]
        source = " ".join(parts)
        value = eval(source, {"__builtins__": {}})
        if value >= 0:
            shown = source.replace("*", "×").replace("( ", "(").replace(" )", ")")
            return f"What is {shown}?", value


def _word_problem(rng: random.Random, spec: _Level) -> tuple[str, int]:
    """A short story problem with `spec.steps` operations on numbers in the level's range."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    lo, hi = max(spec.lo, 10), spec.hi
    num = lambda: rng.randint(lo, hi)
    small = lambda: rng.randint(2, min(spec.factor_hi, 12) if spec.steps < 4 else 25)
    if spec.steps == 1:
        a, b = sorted((num(), num()), reverse=True)
        return _one_step(rng, name, item, a, b, small())
    if spec.steps == 2:
        return _two_step(rng, name, item, num(), num(), small())
    return _multi_step(rng, name, item, num, small)


def _one_step(rng: random.Random, name: str, item: str, a: int, b: int, k: int):
    """One operation: take away, add, multiply or share (a >= b)."""
    choice = rng.randrange(4)
    if choice == 0:
        return f"{name} has {a} {item} and gives away {b}. How many {item} are left?", a - b
    if choice == 1:
        return ((f"{name} has {a} {item} and finds {b} more. How many {item} does {name} "
                f"have now?"), a + b)
    if choice == 2:
        return f"{name} buys {k} bags with {b} {item} in each bag. How many {item} is that?", k * b
    return ((f"{name} shares {k * b} {item} equally among {k} friends. How many {item} does "
            f"each friend get?"), b)


def _two_step(rng: random.Random, name: str, item: str, a: int, b: int, k: int):
    """Two operations on three-digit numbers."""
    choice = rng.randrange(3)
    if choice == 0:
        return ((f"{name} buys {k} boxes of {a} {item} each, then buys {b} loose {item}. "
                f"How many {item} does {name} have in total?"), k * a + b)
    if choice == 1:
        a, b = max(a, b), min(a, b)
        c = rng.randint(10, 999)
        return ((f"{name} has {a} {item}, sells {b} of them and then buys {c} more. How many "
                f"{item} does {name} have now?"), a - b + c)
    return ((f"{name} splits {k * a} {item} into {k} equal piles and then adds {b} {item} to "
            f"one pile. How many {item} are in that pile?"), a + b)


def _multi_step(rng: random.Random, name: str, item: str, num, small) -> tuple[str, int]:
    """Three- or four-step problems with 3-4 digit numbers."""
    choice = rng.randrange(4)
    if choice == 0:
        per_day, days, crate = rng.randint(100, 999), small(), small()
        crates = rng.randint(10, per_day * days // crate - 1)
        shipped = per_day * days - crates * crate
        return ((f"A factory makes {per_day} {item} a day for {days} days. It sends {shipped} "
                f"of them to a shop and packs the rest into crates of {crate}. How many crates "
                f"does it fill?"), crates)
    if choice == 1:
        wage, weeks, rent, food = rng.randint(300, 2500), small(), num(), num()
        while wage * weeks - rent - food < 0:
            wage += 500
        return ((f"{name} earns {wage} dollars a week for {weeks} weeks, then pays {rent} "
                f"dollars of rent and {food} dollars for food. How many dollars are left?"),
                wage * weeks - rent - food)
    if choice == 2:
        s1, h1, s2, h2 = rng.randint(40, 130), small(), rng.randint(40, 130), small()
        back = rng.randint(10, s1 * h1)
        return ((f"A truck drives {h1} hours at {s1} km per hour and {h2} hours at {s2} km per "
                f"hour, then drives {back} km back the way it came. How far is it from where it "
                f"started?"), s1 * h1 + s2 * h2 - back)
    rows, seats, empty, late = small() + 10, small() + 10, rng.randint(10, 99), rng.randint(1, 9)
    return ((f"A theatre has {rows} rows of {seats} seats. At the start {empty} seats are empty; "
            f"then {late} latecomers take seats. How many seats are filled now?"),
            rows * seats - empty + late)
