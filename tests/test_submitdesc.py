import pytest

from dask_condordag.submitdesc import (
    SubmitDescription,
    SubmitSyntaxError,
    expand,
    expand_for_proc,
    parse_environment,
    parse_submit,
    split_arguments,
    split_file_list,
)


def test_parse_submit_structure():
    text = (
        "# comment\n"
        "  # indented comment\n"
        "Executable = /bin/echo\n"
        "\n"
        "ARGUMENTS = \"a b\"\n"
        "+MyAttr = \"x\"\n"
        "My.Other = 1\n"
        "transfer_input_files = a, \\\n"
        "    b\n"
        "queue 3\n"
    )
    assert parse_submit(text) == SubmitDescription(
        commands=(
            ("executable", "/bin/echo"),
            ("arguments", '"a b"'),
            ("My.MyAttr", '"x"'),
            ("My.Other", "1"),
            ("transfer_input_files", "a, b"),
        ),
        queue_count=3,
    )


def test_queue_forms():
    assert parse_submit("a = 1\n").queue_count == 1
    assert parse_submit("a = 1\nQUEUE\n").queue_count == 1
    assert parse_submit("a = 1\nqueue 0\n").queue_count == 0


@pytest.mark.parametrize(
    "text, lineno, fragment",
    [
        ("a = 1\nqueue x in (1, 2)\n", 2, "supported: 'queue' and 'queue N'"),
        ("a = 1\nqueue from f.txt\n", 2, "supported"),
        ("queue\nqueue\n", 2, "only one queue"),
        ("queue\na = 1\n", 2, "after the queue"),
        ("a = 1\njunk\n", 2, "expected 'key = value'"),
        ("if defined x\n", 1, "'if' statements"),
        ("include : f\n", 1, "'include' statements"),
        ("bad key = 1\n", 1, "invalid command name"),
        ("queuex = 1\n", 1, "may not begin with 'queue'"),
    ],
)
def test_submit_errors_name_file_and_line(text, lineno, fragment):
    with pytest.raises(SubmitSyntaxError) as e:
        parse_submit(text, "job.sub")
    assert str(e.value).startswith(f"job.sub:{lineno}: ")
    assert fragment in str(e.value)


def test_expand_rules():
    d = parse_submit(
        "x = 1\nx = $(x) 2\ny = $(X)\nb = $(DOLLAR)(x)\ne = $(b)\n+Foo = 3\n"
        "z = $(my.foo) $(u:de f) $$(A) $(undefined)! $(y\nlate = $(w)\nw = W\n"
    )
    assert expand(d, {}) == {
        "x": "1 2", "y": "1 2", "b": "$(x)", "e": "$(x)", "My.Foo": "3",
        "z": "3 de f $$(A) ! $(y", "late": "W", "w": "W",
    }


def test_vars_are_prepended():
    d = parse_submit("a = file\nb = $(a)-$(v)\nc = $(c) more\n")
    assert expand(d, {"A": "vars", "v": "V", "c": "C"}) == {
        "a": "file", "b": "file-V", "c": "C more",
    }


def test_cycle_is_an_error():
    with pytest.raises(SubmitSyntaxError):
        expand(parse_submit("x = $(y)\ny = $(x)\n"), {})


def test_expand_for_proc():
    d = parse_submit("out = r.$(Cluster).$(ProcId).$(Process).$(ClusterId).$(Step).$(Row)[$(Item)]\nqueue 4\n")
    assert expand_for_proc(d, {}, 12, 3) == {"out": "r.12.3.3.12.3.0[]"}


@pytest.mark.parametrize(
    "value, expected",
    [
        ('"a b  c"', ["a", "b", "c"]),
        ('"one \'two with spaces\' 3"', ["one", "two with spaces", "3"]),
        ('"\'it\'\'s\' ""quoted"""', ["it's", '"quoted"']),
        ('"a \'\' b"', ["a", "", "b"]),
        ('"\'\'d\'\'"', ["d"]),
        ('  "x"  ', ["x"]),
        ('""', []),
        ('"ünï cödé \'ß x\'"', ["ünï", "cödé", "ß x"]),
        ("a b\\c  d", ["a", "b\\c", "d"]),
        ('say \\"hi\\"', ["say", '"hi"']),
        ("", []),
    ],
)
def test_split_arguments(value, expected):
    assert split_arguments(value) == expected


@pytest.mark.parametrize("value", ['"a', '"a" b', '"\'a"', 'a"b'])
def test_split_arguments_errors(value):
    with pytest.raises(SubmitSyntaxError):
        split_arguments(value)


def test_split_file_list():
    assert split_file_list(" a.pkl, nodes/b.pkl ,,c ,") == ["a.pkl", "nodes/b.pkl", "c"]
    assert split_file_list("") == []


def test_parse_environment():
    assert parse_environment("\"A=1 B='x y' C='it''s' D=\"\"q\"\" E=\"") == {
        "A": "1", "B": "x y", "C": "it's", "D": '"q"', "E": "",
    }
    assert parse_environment("A=1;B=x y") == {"A": "1", "B": "x y"}
    with pytest.raises(SubmitSyntaxError):
        parse_environment('"NOEQUALS"')


# ---------------------------------------------------------------- cross-checks with HTCondor

ADVERSARIAL = [
    "plain",
    "two words",
    'say "hi"',
    "it's",
    "back\\slash",
    "$(DOLLAR)HOME",
    "ünïcødé ✓",
    "a=b c=d",
    "$(other)",
    "inner  double  space",
    "x'y",
    "#not a comment",
]


def _htcondor():
    return pytest.importorskip("htcondor2")


@pytest.mark.parametrize("value", ADVERSARIAL)
def test_expand_matches_htcondor_with_prepended_vars(value):
    htcondor2 = _htcondor()
    body = (
        "executable = /bin/true\n"
        "arguments = \"'$(v)' x $(w)\"\n"
        "out = $(v).$(JOB).$(w:dflt)\n"
        "w = file_$(v)\n"
        "other = O\n"
    )
    macros = {"v": value, "JOB": "node1"}
    prepended = "".join(f"{k} = {v}\n" for k, v in macros.items())
    sub = htcondor2.Submit(prepended + body)
    ours = expand(parse_submit(body), macros)
    for key in ("arguments", "out", "w"):
        assert ours[key] == sub.expand(key), key


def test_file_assignment_beats_prepended_var_like_htcondor():
    htcondor2 = _htcondor()
    body = "a = file\nb = $(a)\nc = $(c)-x\n"
    sub = htcondor2.Submit("a = vars\nc = C\n" + body)
    ours = expand(parse_submit(body), {"a": "vars", "c": "C"})
    assert ours == {k: sub.expand(k) for k in ("a", "b", "c")}


def test_macro_edge_cases_match_htcondor():
    htcondor2 = _htcondor()
    body = (
        "a = $(undefined)x\nb = $(DOLLAR)(x)\nc = $(zz:def ault)\nd = $(Q)\nQ = 1\n"
        "e = $(b)\nf = $(y\ng = $(Q)z)\nh = $$(Attr)\n+Foo = 3\ni = $(My.Foo)\n"
        "j = one \\\n   two\n"
    )
    sub = htcondor2.Submit(body)
    ours = expand(parse_submit(body), {})
    assert ours == {k: sub.expand(k) for k in ours}
