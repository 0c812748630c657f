"""Every refused field can be told to a cashier in Vietnamese and in English.

The table is checked row by row; the source is read to prove that every ``FieldError``
ecrlink raises goes through the table with the parameters its texts need; and the
validators are driven with hypothesis, every error they raise rendered in both languages.
"""

from __future__ import annotations

import ast
import io
import json
import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ecrlink
from ecrlink import FieldError, RemoteProtocolError
from ecrlink.cli.journal_cmd import parse_moment
from ecrlink.cli.options import Environment, echo_error
from ecrlink.cli.payments import parse_amount, parse_field
from ecrlink.protocol import (
    Sale,
    Void,
    check_amount,
    check_field,
    check_receipt_no,
    parse_request_line,
)
from ecrlink.protocol.field_texts import (
    FIELD_NAMES,
    RULES,
    field_error,
    field_message,
    field_name,
)

SRC = Path(ecrlink.__file__).parent

# Words of the English rules that have no business in a Vietnamese message.
ENGLISH = frozenset({
    "must", "only", "characters", "digits", "greater", "whole", "exactly", "printable",
    "contain", "travels", "already", "give", "got", "plain", "empty", "like", "date",
    "receipt", "sale", "vnd", "number", "break", "request", "line", "least", "most",
})


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def sample(name: str) -> object:
    """A value for a placeholder: an int where the texts format it as a number."""
    return {"codepoint": 10, "max": 20, "length": 25, "number": 3}.get(name, "x")


def assert_vietnamese(vi: str, en: str) -> None:
    assert vi.strip() and en.strip()
    assert vi != en
    left = ENGLISH & set(re.findall(r"\w+", vi.lower()))
    assert not left, f"English left in {vi!r}: {sorted(left)}"


# --- the table ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_rule_reads_in_both_languages(code: str) -> None:
    vi, en = RULES[code]
    assert placeholders(vi) == placeholders(en), code
    params = {name: sample(name) for name in placeholders(en)}
    error = field_error("amount", code, None, **params)
    assert error.code == code and error.params == params
    assert str(error) == f"amount: {en.format(**params)}" == field_message(error, "en")
    assert field_message(error, "vi") == f"số tiền: {vi.format(**params)}"
    assert_vietnamese(vi.format(**params), en.format(**params))


def test_field_names_are_vietnamese_and_english_keeps_the_name() -> None:
    for name, vi in FIELD_NAMES.items():
        assert vi.strip() and vi != name, name
        assert field_name(name, "en") == name
        assert field_name(name, "vi") == vi
    assert field_name("unheard_of", "vi") == "unheard_of"


def test_an_error_without_a_rule_code_keeps_its_text() -> None:
    # As raised by code outside ecrlink: the message still names the field in Vietnamese.
    error = FieldError("amount", "must be even")
    assert error.code is None and error.params == {}
    assert field_message(error, "vi") == "số tiền: must be even"
    assert field_message(error, "en") == str(error) == "amount: must be even"


# --- the source: every FieldError goes through the table ------------------------------------


def _calls() -> Iterator[tuple[Path, ast.Call]]:
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                yield path, node


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _constants(node: ast.expr) -> list[str]:
    """The rule codes a call's argument can be: a literal, or a choice of literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _constants(node.body) + _constants(node.orelse)
    raise AssertionError(f"rule code is not a literal: {ast.unparse(node)}")


# Raise sites not yet switched to field_error (path -> rule codes): none left.
PENDING: dict[str, set[str]] = {}


def test_every_field_error_in_the_source_has_a_rule_and_its_parameters() -> None:
    used: set[str] = set().union(*PENDING.values())
    still_pending: set[str] = set()
    for path, call in _calls():
        where = f"{path.relative_to(SRC)}:{call.lineno}"
        if _name(call) == "FieldError" and path.relative_to(SRC).as_posix() in PENDING:
            still_pending.add(path.relative_to(SRC).as_posix())
        elif _name(call) == "FieldError":
            assert path.name in ("_exceptions.py", "field_texts.py"), (
                f"{where}: raise field_error(field, code, value, **params) so that the "
                "error has a Vietnamese text"
            )
        if _name(call) != "field_error" or path.name == "field_texts.py":
            continue
        codes = _constants(call.args[1])
        given_params = {k.arg for k in call.keywords}
        for code in codes:
            assert code in RULES, f"{where}: no texts for rule {code!r}"
            assert given_params == placeholders(RULES[code][1]), where
        used.update(codes)
        field = call.args[0]
        if isinstance(field, ast.Constant):
            assert field.value in FIELD_NAMES, f"{where}: no Vietnamese name for {field.value!r}"
    assert used == set(RULES), f"rules nobody raises: {sorted(set(RULES) - used)}"
    assert still_pending == set(PENDING), f"no longer pending: {set(PENDING) - still_pending}"


def test_every_field_name_given_to_a_check_has_a_vietnamese_name() -> None:
    # check_field(name, ...), check_amount(amount, name), check_receipt_no(value, name)
    position = {"check_field": 0, "check_amount": 1, "check_receipt_no": 1}
    seen = set()
    for path, call in _calls():
        if _name(call) not in position:
            continue
        index = position[_name(call)]
        names = [k.value for k in call.keywords if k.arg == "name"]
        if len(call.args) > index:
            names.append(call.args[index])
        for name in names:
            if isinstance(name, ast.Constant):
                assert name.value in FIELD_NAMES, f"{path.name}:{call.lineno} {name.value!r}"
                seen.add(name.value)
    assert {"client_id", "receipt"} <= seen  # the scan found the calls


# --- the validators, driven -------------------------------------------------------------------


def assert_renders(error: FieldError) -> None:
    assert error.code in RULES, f"{error!r} has no rule code"
    en = field_message(error, "en")
    vi = field_message(error, "vi")
    assert en == str(error) == f"{error.field}: {error.rule}"
    assert_vietnamese(vi, en)
    if error.field in FIELD_NAMES:
        assert vi.startswith(FIELD_NAMES[error.field] + ": ")


def renders_if_refused(call: Callable[[], object]) -> None:
    try:
        call()
    except FieldError as exc:
        assert_renders(exc)


ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(),
    st.binary(max_size=5), st.lists(st.integers(), max_size=2),
)
# Mostly printable ASCII, some of what the rules refuse.
TEXT = st.text(
    st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E), st.characters()),
    max_size=25,
)


@given(
    name=st.sampled_from(sorted(FIELD_NAMES)),
    value=st.one_of(TEXT, ANYTHING),
    max_length=st.integers(0, 25),
    transliterate_text=st.booleans(),
    allow_empty=st.booleans(),
)
def test_check_field_errors_render(
    name: str, value: object, max_length: int, transliterate_text: bool, allow_empty: bool
) -> None:
    renders_if_refused(lambda: check_field(
        name, value, max_length=max_length,  # type: ignore[arg-type]
        transliterate_text=transliterate_text, allow_empty=allow_empty,
    ))


@given(amount=st.one_of(st.integers(-10, 10**11), ANYTHING))
def test_check_amount_errors_render(amount: object) -> None:
    renders_if_refused(lambda: check_amount(amount))


@given(receipt=st.one_of(st.integers(-5, 10**22), st.text("0123456789 x", max_size=24), ANYTHING))
def test_check_receipt_no_errors_render(receipt: object) -> None:
    renders_if_refused(lambda: check_receipt_no(receipt))
    renders_if_refused(lambda: Void(request_id="r", client_id="c", receipt_no=receipt))  # type: ignore[arg-type]


@settings(max_examples=300)
@given(
    amount=st.one_of(st.integers(-10, 10**11), ANYTHING),
    invoice=st.one_of(st.none(), TEXT),
    reference=st.one_of(st.none(), TEXT),
    fields=st.one_of(
        st.none(),
        st.dictionaries(st.integers(-1, 7), TEXT, max_size=3),
        st.lists(TEXT, max_size=7),
    ),
    ids=st.tuples(TEXT, TEXT),
    transliterate=st.booleans(),
)
def test_sale_errors_render(
    amount: object, invoice: str | None, reference: str | None, fields: object,
    ids: tuple[str, str], transliterate: bool,
) -> None:
    renders_if_refused(lambda: Sale.build(
        amount, request_id=ids[0], client_id=ids[1],  # type: ignore[arg-type]
        invoice=invoice, reference=reference, fields=fields,  # type: ignore[arg-type]
        transliterate=transliterate,
    ))
    if isinstance(fields, list):
        renders_if_refused(lambda: Sale(
            request_id="r", client_id="c", amount=5, fields=tuple(fields),  # type: ignore[arg-type]
        ))


@given(
    command=st.sampled_from(["sale", "void", "settle"]),
    args=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                        exclude_characters="|&"), max_size=12), max_size=3),
)
def test_request_line_field_errors_render(command: str, args: list[str]) -> None:
    line = f"/ecr?rqt=r|c&cmd={'|'.join([command, *args])}"
    try:
        parse_request_line(line)
    except RemoteProtocolError as exc:
        if isinstance(exc.__cause__, FieldError):
            assert_renders(exc.__cause__)


@given(text=st.one_of(TEXT, st.from_regex(r"-?[0-9.,_ ]{1,14}", fullmatch=True)))
def test_command_line_errors_render(text: str) -> None:
    renders_if_refused(lambda: parse_amount(text))
    renders_if_refused(lambda: parse_field(text))
    renders_if_refused(lambda: parse_moment(text, "--since"))
    renders_if_refused(lambda: parse_moment(text, "--until", end=True))


def test_the_validators_really_refuse() -> None:
    # The property tests above would pass vacuously if nothing were ever refused.
    for call in (
        lambda: check_amount(0), lambda: check_field("F1", "é"), lambda: parse_amount("x"),
        lambda: parse_field("9=x"), lambda: parse_moment("soon", "--since"),
        lambda: Sale.build(5, request_id="", client_id="c"),
    ):
        with pytest.raises(FieldError) as info:
            call()
        assert_renders(info.value)


# --- the command line's error line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("vi", "ecrlink: Dữ liệu không hợp lệ, chưa gửi gì: số tiền: phải lớn hơn 0\n"),
        ("en", "ecrlink: Bad input, nothing sent: amount: must be greater than 0\n"),
    ],
)
def test_echo_error_speaks_the_cashiers_language(lang: str, expected: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    error = field_error("amount", "not_positive", 0)
    status = echo_error(Environment(stdout=out, stderr=err), lang, error, as_json=True)
    assert err.getvalue() == expected
    reply = json.loads(out.getvalue())["error"]
    assert reply["exit"] == int(status) == 4
    assert (reply["field"], reply["rule"], reply["rule_code"]) == (
        "amount", "must be greater than 0", "not_positive",
    )
    assert reply["message"] == expected.split(": ", 2)[2].rstrip("\n")
