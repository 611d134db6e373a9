"""A fuzzer of the command line: every command, in-process, with random and hostile arguments.

Every call must end cleanly: exit 0, or exactly one ``error:`` line and a non-zero code (2 when an
option or argument is invalid), never a traceback, and never a change to an existing run folder.
The expensive computations are stubs that raise :class:`StubReached`; they sit behind the option
checks, so a stub is reached only when every argument was valid, and it must be reached then.

About 1,300 cases per run (the ``max_examples`` below), in seconds: each is one in-process call.
"""

from __future__ import annotations

import hashlib
import importlib
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spectrum_files import nist_like_jcamp
from typer.testing import CliRunner

from specml.cli import app
from specml.errors import SpecmlError

#: Calls per command; the sum is the number of cases per run.
EXAMPLES = {
    "harmonic": 250,
    "md": 200,
    "ir": 250,
    "compare": 150,
    "identify": 200,
    "library": 100,
    "tokens": 150,
}
#: The expensive steps, each right behind its command's option checks.
STUBS = [
    ("specml.cli.commands_core", "_harmonic_of"),
    ("specml.molecules", "optimize_geometry"),
    ("specml.cli.commands_ir", "_train"),
    ("specml.cli.commands_ir", "_predict"),
    ("specml.identification.identify", "fill_ensemble"),
    ("specml.identification", "fill_library"),
    ("specml.plotting", "plot_comparison"),
]


def fuzz_settings(name: str) -> settings:
    """No deadline (the first calls import RDKit, SciPy and torch) and no example database in the checkout."""
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


# What a drawn argument is: valid; invalid for the option checks (bad); a file that cannot be
# read as what it should be (hostile); or anything, odd but possibly fine (unknown).
VALID, UNKNOWN, HOSTILE, BAD = "valid", "unknown", "hostile", "bad"


class StubReached(SpecmlError):
    """Raised in place of a computation: the CLI ends with ``error: stub reached`` (exit 1)."""


def stub(*args, **kwargs):
    raise StubReached("stub reached")


# -- files ----------------------------------------------------------------------------------------


def write_files(root: Path) -> dict[str, Path]:
    files = {
        "jdx": root / "query.jdx",
        "csv_spectrum": root / "query.csv",
        "candidates": root / "candidates.csv",
        "xyz": root / "water.xyz",
        "empty_xyz": root / "empty.xyz",
        "empty": root / "empty.jdx",
        "binary": root / "binary.jdx",
        "binary_csv": root / "binary.csv",
        "dir": root / "a_folder",
        "missing": root / "missing.jdx",
    }
    files["jdx"].write_text(nist_like_jcamp(1.04, n=301))
    grid = np.arange(500.0, 4000.0, 2.0)
    rows = "\n".join(f"{x:g},{np.exp(-(((x - 1700) / 30) ** 2)):.6f}" for x in grid)
    files["csv_spectrum"].write_text(
        '# {"intensity_units": "absorbance"}\nwavenumber,absorbance\n' + rows + "\n"
    )
    files["candidates"].write_text(
        'name,smiles\nmethanol,CO\n"1,1,1-trichloroethane",CC(Cl)(Cl)Cl\npyrrole,c1cc[nH]c1\n'
    )
    files["xyz"].write_text("3\nwater\nO 0 0 0.119\nH 0 0.763 -0.477\nH 0 -0.763 -0.477\n")
    files["empty"].write_bytes(b"")
    files["empty_xyz"].write_bytes(b"")
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["binary_csv"].write_bytes(b"\x00\xff\xfe" * 100)
    files["dir"].mkdir()
    return files


def folder_state(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with a digest of its content."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(folder.rglob("*"))
    }


@dataclass
class Fuzz:
    root: Path
    files: dict[str, Path]
    run: Path  # an existing run folder that no call may change
    run_state: dict
    runner: CliRunner = field(default_factory=CliRunner)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    files = write_files(root)
    run = root / "runs" / "existing"
    (run / "models" / "final").mkdir(parents=True)  # a trained run's layout: --models accepts it
    (run / "config.json").write_text('{"reference": "xtb"}')
    (run / "models" / "final" / "committee.json").write_text("{}")
    (root / "cwd").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root / "cwd")  # default output folders (runs/, specml-output/) would land here
        patch.setenv("SPECML_LIBRARY", str(root / "scratch" / "library.sqlite"))
        for module, name in STUBS:  # by module object: the function identify hides its module's name
            patch.setattr(importlib.import_module(module), name, stub)
        yield Fuzz(root, files, run, folder_state(run))


# -- argument strategies --------------------------------------------------------------------------


def numbers(lo: float, hi: float) -> st.SearchStrategy:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(repr)


NOT_NUMBERS = st.sampled_from(["abc", "", "1,5", "--", "five", "0x", "1e", "∞"])
NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e400"])
ODD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)
ODD_SMILES = st.text(
    alphabet=string.ascii_letters + string.digits + "()[]=#@+-\\/%.*:", min_size=1, max_size=25
)


@dataclass(frozen=True)
class Opt:
    """An option (or, with flag None, a positional argument): strategies of its value tokens by kind."""

    flag: str | None
    kinds: dict  # kind -> strategy of a list of tokens
    required: bool = False


def one(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return strategy.map(lambda value: [value])


def path_of(fuzz: Fuzz, *names: str) -> st.SearchStrategy:
    return st.sampled_from(names).map(lambda name: [str(fuzz.files[name])])


def jcamp_variants(fuzz: Fuzz) -> st.SearchStrategy:
    """The NIST-like file with odd headers: values replaced or lines dropped (it may still load)."""
    lines = nist_like_jcamp(1.04, n=301).splitlines()

    @st.composite
    def variant(draw):
        edited = list(lines)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, 13))
            key = edited[i].split("=", 1)[0]
            edited[i] = draw(
                st.sampled_from([key + "=" + draw(ODD_TEXT), "", key + "=-1", key + "=0", key + "=1e9"])
            )
        path = fuzz.root / f"odd_{hashlib.md5(repr(edited).encode()).hexdigest()}.jdx"
        path.write_text("\n".join(edited) + "\n")
        return [str(path)]

    return variant()


def spectrum_kinds(fuzz: Fuzz) -> dict:
    return {
        VALID: path_of(fuzz, "jdx", "csv_spectrum"),
        BAD: path_of(fuzz, "empty", "dir", "missing"),
        HOSTILE: path_of(fuzz, "binary"),
        UNKNOWN: jcamp_variants(fuzz),
    }


def molecule_kinds(fuzz: Fuzz) -> dict:
    return {
        VALID: st.one_of(
            st.sampled_from(["CO", "O", "C", "CC=O", "[2H]C"]).map(lambda s: [s]), path_of(fuzz, "xyz")
        ),
        BAD: st.sampled_from(
            ["C1CC", "((", str(fuzz.files["missing"].with_suffix(".xyz")), str(fuzz.files["empty_xyz"])]
        ).map(lambda s: [s]),
        # Uranium: refused by xTB up front, but trained models check their elements later.
        UNKNOWN: one(st.one_of(ODD_SMILES, st.just("[U]"))),
    }


def reference_kinds(valid=("xtb", "gfn1", "gfn2-xtb", "ipea1-xtb", "pyscf:b3lyp/def2-svp")) -> dict:
    return {
        VALID: st.sampled_from(valid).map(lambda s: [s]),
        BAD: st.sampled_from(["nope", "xtb+", "pyscf:b3lyp", "ase:no_such_module:Calc", "", "ase:"]).map(
            lambda s: [s]
        ),
    }


def scheduler_kinds() -> dict:
    return {
        VALID: st.sampled_from(["local:2", "tcp://127.0.0.1:8786", "localhost:8786"]).map(lambda s: [s]),
        BAD: st.sampled_from(["local:0", "local:x", "nowhere", "tcp://host", ""]).map(lambda s: [s]),
    }


def positive_kinds(hi: float, bad_extra=("0", "-1")) -> dict:
    return {
        VALID: one(numbers(1e-3 * hi, hi)),
        BAD: one(st.one_of(NOT_NUMBERS, NON_FINITE, st.sampled_from(bad_extra))),
    }


def range_kinds() -> dict:
    valid = st.tuples(st.floats(0, 3000), st.floats(50, 5000)).map(lambda t: [repr(t[0]), repr(t[0] + t[1])])
    bad = st.sampled_from(
        [["4000", "500"], ["500", "500"], ["-10", "400"], ["0", "1e6"], ["nan", "4000"], ["a", "b"]]
    )
    return {VALID: valid, BAD: bad}


def output_folder_kinds(fuzz: Fuzz) -> dict:
    return {VALID: st.just([str(fuzz.root / "scratch" / "out")]), BAD: path_of(fuzz, "jdx")}


def json_kind() -> dict:
    return {VALID: st.just([])}


def odd_combination() -> dict:
    """A flag valid alone whose combinations with other options may not be (e.g. --conformers with a file)."""
    return {UNKNOWN: st.just([])}


def command_options(fuzz: Fuzz) -> dict[str, tuple[list[str], list[Opt]]]:
    run = [str(fuzz.run)]
    return {
        "harmonic": (
            ["harmonic"],
            [
                Opt(None, molecule_kinds(fuzz), required=True),
                Opt("--reference", reference_kinds()),
                Opt("--fwhm", positive_kinds(200.0)),
                Opt(
                    "--shape",
                    {VALID: st.sampled_from([["lorentzian"], ["gaussian"]]), BAD: st.just(["square"])},
                ),
                Opt("--range", range_kinds()),
                Opt("-T", positive_kinds(3000.0, ("0", "-5", "20000"))),
                Opt("--compare", spectrum_kinds(fuzz)),
                Opt("--out", {VALID: st.just(run), BAD: path_of(fuzz, "jdx")}),
                Opt("--json", json_kind()),
                Opt("--gas-contour", odd_combination()),
                Opt("--conformers", odd_combination()),
            ],
        ),
        "md": (
            ["md"],
            [
                Opt(None, molecule_kinds(fuzz), required=True),
                Opt("--reference", reference_kinds()),
                Opt("-T", positive_kinds(3000.0, ("0", "-5", "20000"))),
                Opt(
                    "--time",
                    {
                        VALID: one(numbers(2.0, 50.0)),  # >= twice the default correlation depth
                        BAD: one(st.sampled_from(["0", "-1", "nan", "0.0001"])),
                    },
                ),
                Opt(
                    "--thermalization",
                    {VALID: one(numbers(0, 10)), BAD: one(st.sampled_from(["-1", "nan", "x"]))},
                ),
                Opt(
                    "--timestep",
                    {VALID: one(numbers(0.1, 2)), BAD: one(st.sampled_from(["0", "-0.5", "1e-300", "inf"]))},
                ),
                Opt(
                    "--friction",
                    {VALID: one(numbers(0, 0.5)), BAD: one(st.sampled_from(["-0.1", "1e9", "nan"]))},
                ),
                Opt(
                    "--max-correlation",
                    {VALID: one(numbers(10, 50)), BAD: one(st.sampled_from(["0", "-5", "1e12"]))},
                ),
                Opt(
                    "--seed",
                    {
                        VALID: one(st.integers(0, 2**40).map(str)),
                        BAD: one(st.sampled_from(["-1", "1.5", "x"])),
                    },
                ),
                Opt("--out", {VALID: st.just(run), BAD: path_of(fuzz, "jdx")}),
                Opt("--compare", spectrum_kinds(fuzz)),
            ],
        ),
        "ir": (
            ["ir"],
            [
                Opt(None, molecule_kinds(fuzz), required=True),
                Opt("--reference", reference_kinds()),
                Opt("--run-dir", {VALID: st.just(run), BAD: path_of(fuzz, "jdx")}),
                Opt(
                    "--preset",
                    {
                        VALID: st.sampled_from([["default"], ["quick"], ["ci"], ["paper"]]),
                        BAD: st.sampled_from([["fast"], [""], ["CI"]]),
                    },
                ),
                Opt("--models", {VALID: st.just(run), BAD: path_of(fuzz, "missing", "jdx")}),
                Opt(
                    "-T",
                    {
                        VALID: st.lists(numbers(10, 3000), min_size=1, max_size=3).map(
                            lambda ts: [t for x in ts for t in ("-T", x)][1:]
                        ),
                        BAD: st.sampled_from([["-5"], ["0"], ["nan"], ["300", "-T", "-1"], ["1e5"]]),
                    },
                ),
                Opt("--compare", spectrum_kinds(fuzz)),
                Opt("--scheduler", scheduler_kinds()),
                Opt(
                    "--max-iterations",
                    {VALID: one(st.integers(0, 50).map(str)), BAD: one(st.sampled_from(["-1", "x"]))},
                ),
                Opt(
                    "--stall-iterations",
                    {VALID: one(st.integers(0, 20).map(str)), BAD: one(st.sampled_from(["-1", "x"]))},
                ),
                Opt("--production-ps", positive_kinds(100.0)),
                Opt("--json", json_kind()),
            ],
        ),
        "compare": (
            ["compare"],
            [
                Opt(None, spectrum_kinds(fuzz), required=True),
                Opt(None, spectrum_kinds(fuzz), required=True),
                Opt("--range", range_kinds()),
                Opt(
                    "--step",
                    {
                        VALID: one(numbers(0.5, 20)),
                        BAD: one(st.sampled_from(["0", "-1", "1e-12", "nan", "x"])),
                    },
                ),
                Opt(
                    "--out",
                    {
                        VALID: st.just([str(fuzz.root / "scratch" / "overlay.png")]),
                        BAD: st.sampled_from(
                            [
                                [str(fuzz.root / "overlay.jpg")],
                                [str(fuzz.files["dir"])],
                                [str(fuzz.files["jdx"] / "x.png")],
                            ]
                        ),
                    },
                ),
                Opt("--json", json_kind()),
            ],
        ),
        "identify": (
            ["identify"],
            [
                Opt(None, spectrum_kinds(fuzz), required=True),
                Opt(
                    "--candidates",
                    {
                        VALID: path_of(fuzz, "candidates"),
                        BAD: path_of(fuzz, "missing", "empty", "dir"),
                        HOSTILE: path_of(fuzz, "binary_csv"),
                    },
                    required=True,
                ),
                Opt("--reference", reference_kinds(("xtb", "gfn1", "gfn2+gfn1"))),
                Opt(
                    "--top",
                    {VALID: one(st.integers(1, 100).map(str)), BAD: one(st.sampled_from(["0", "-3", "x"]))},
                ),
                Opt("--scheduler", scheduler_kinds()),
                Opt(
                    "--out",
                    {
                        VALID: st.just([str(fuzz.root / "scratch" / "identify.png")]),
                        BAD: st.just([str(fuzz.root / "identify.txt")]),
                    },
                ),
                Opt("--json", json_kind()),
                Opt("--csv", json_kind()),
            ],
        ),
        "library": (
            ["library", "build"],
            [
                Opt(
                    None,
                    {
                        VALID: path_of(fuzz, "candidates"),
                        BAD: path_of(fuzz, "missing", "empty", "dir"),
                        HOSTILE: path_of(fuzz, "binary_csv"),
                    },
                    required=True,
                ),
                Opt("--reference", reference_kinds(("xtb", "gfn1", "gfn2+gfn1"))),
                Opt("--preset", {VALID: st.sampled_from([["default"], ["ci"]]), BAD: st.just(["nope"])}),
                Opt(
                    "--library",
                    {VALID: st.just([str(fuzz.root / "scratch" / "lib.sqlite")]), BAD: path_of(fuzz, "dir")},
                ),
                Opt("--scheduler", scheduler_kinds()),
                Opt("--json", json_kind()),
            ],
        ),
    }


@st.composite
def cases(draw, fuzz: Fuzz, name: str) -> tuple[list[str], set[str]]:
    """Arguments of one call and the kinds of the arguments drawn."""
    prefix, options = command_options(fuzz)[name]
    all_valid = draw(st.booleans())  # half the calls are valid throughout, so that stubs are reached
    args, kinds = list(prefix), {VALID}
    for opt in options:
        usable = [
            k for k in (VALID, UNKNOWN, HOSTILE, BAD) if k in opt.kinds and (k == VALID or not all_valid)
        ]
        if not usable or (not opt.required and draw(st.booleans())):
            continue
        kind = draw(st.sampled_from(usable))
        args += ([opt.flag] if opt.flag else []) + draw(opt.kinds[kind])
        kinds.add(kind)
    if "--json" in args and "--csv" in args:
        kinds.add(BAD)
    return args, kinds


def run_case(fuzz: Fuzz, args: list[str], kinds: set[str]) -> None:
    result = fuzz.runner.invoke(app, args)
    shown = (
        f"specml {' '.join(args)}\nkinds {sorted(kinds)}, exit {result.exit_code}\n"
        f"stdout: {result.stdout[-1500:]}\nstderr: {result.stderr[-1500:]}"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{shown}\n{type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output, shown
    help_instead = result.exit_code == 2 and "Usage:" in result.stdout  # `specml`, `specml library` alone
    if result.exit_code != 0 and not help_instead:  # one error line, the last (after cautions, progress)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], shown
    reached = "stub reached" in result.stderr
    if kinds == {VALID, BAD}:  # checked before any file is read: a usage error
        assert result.exit_code == 2 and not reached, shown
    elif kinds & {BAD, HOSTILE}:
        assert result.exit_code != 0 and not reached, shown
    elif kinds == {VALID}:
        assert reached or (args[0] == "compare" and result.exit_code in (0, 1)), shown
    assert folder_state(fuzz.run) == fuzz.run_state, f"{shown}\nthe run folder changed"


def fuzz_command(name: str):
    @fuzz_settings(name)
    @given(data=st.data())
    def test(fuzz, data):
        args, kinds = data.draw(cases(fuzz, name), label="case")
        run_case(fuzz, args, kinds)

    test.__name__ = f"test_fuzz_{name}"
    return test


test_fuzz_harmonic = fuzz_command("harmonic")
test_fuzz_md = fuzz_command("md")
test_fuzz_ir = fuzz_command("ir")
test_fuzz_compare = fuzz_command("compare")
test_fuzz_identify = fuzz_command("identify")
test_fuzz_library_build = fuzz_command("library")


TOKENS = st.one_of(
    st.sampled_from(
        [
            "harmonic",
            "md",
            "ir",
            "compare",
            "identify",
            "library",
            "build",
            "--json",
            "--csv",
            "--help",
            "--version",
            "--threads",
            "-T",
            "--fwhm",
            "--range",
            "--out",
            "--reference",
            "--candidates",
            "--models",
            "CO",
            "-",
            "--",
        ]
    ),
    ODD_TEXT,
    NON_FINITE,
    st.integers(-(10**6), 10**6).map(str),
)


@fuzz_settings("tokens")
@given(args=st.lists(TOKENS, max_size=8))
def test_fuzz_random_tokens(fuzz, args):
    """Any token sequence at all: a clean exit, whatever it is."""
    run_case(fuzz, args, {UNKNOWN})
