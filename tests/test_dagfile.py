from datetime import datetime, timezone

import pytest

from dask_condordag.dagfile import (
    DagFile,
    DagNode,
    DagSyntaxError,
    apply_rescue,
    newest_rescue,
    next_rescue_path,
    parse_dag,
    render_rescue,
    rescue_files,
)

FULL = """\
# a comment
// also a comment
CONFIG dag.config
DOT dag.dot UPDATE DONT-OVERWRITE INCLUDE head.dot
NODE_STATUS_FILE status.txt 30 ALWAYS-UPDATE
JOBSTATE_LOG jobstate.log

job A a.sub DIR work NOOP
JOB B b.sub
Job C "c file.sub" DONE
VARS A x="1" y = "two words"
vars B PREPEND z="he said \\"hi\\" \\\\ end"
RETRY A 3 UNLESS-EXIT 42
RETRY C 1
PRIORITY B -5
CATEGORY A big
CATEGORY B big
MAXJOBS big 2
ABORT-DAG-ON B 7 RETURN 1
abort_dag_on C 3
SCRIPT PRE A /bin/pre.sh $JOB  arg
SCRIPT DEFER 4 10 POST B /bin/post.sh $RETURN
PARENT A CHILD B C
PARENT B C CHILD
"""


def test_parse_full():
    text = FULL.replace("PARENT B C CHILD\n", "")
    dag = parse_dag(text, "full.dag")
    assert dag == DagFile(
        nodes={
            "A": DagNode(
                name="A", submit="a.sub", dir="work", noop=True,
                vars=(("x", "1"), ("y", "two words")),
                retry=3, retry_unless_exit=42, category="big",
                pre="/bin/pre.sh $JOB  arg",
            ),
            "B": DagNode(
                name="B", submit="b.sub", vars=(("z", 'he said "hi" \\ end'),),
                priority=-5, category="big", abort_dag_on=(7, 1),
                post="/bin/post.sh $RETURN",
            ),
            "C": DagNode(name="C", submit="c file.sub", done=True, retry=1,
                         abort_dag_on=(3, None)),
        },
        parents={"B": ("A",), "C": ("A",)},
        children={"A": ("B", "C")},
        maxjobs={"big": 2},
        config="dag.config",
        dot="dag.dot",
        node_status_file=("status.txt", 30),
        jobstate_log="jobstate.log",
    )
    assert list(dag.nodes) == ["A", "B", "C"]


def test_missing_children_is_error_with_location():
    with pytest.raises(DagSyntaxError) as e:
        parse_dag(FULL, "full.dag")
    assert str(e.value).startswith("full.dag:24:")
    assert "PARENT B C CHILD" in str(e.value)


def test_multi_parent_child_and_all_nodes():
    dag = parse_dag("JOB a s\nJOB b s\nJOB c s\nJOB d s\n"
                    "PARENT a b CHILD c d\nPARENT c CHILD d\nVARS ALL_NODES k=\"v\"\n")
    assert dag.parents == {"c": ("a", "b"), "d": ("a", "b", "c")}
    assert dag.children == {"a": ("c", "d"), "b": ("c", "d"), "c": ("d",)}
    assert {n.vars for n in dag.nodes.values()} == {(("k", "v"),)}


def test_done_line_and_vars_my_attribute():
    dag = parse_dag("JOB a s\nDONE a\nVARS a +Foo=\"\\\"bob\\\"\" My.Bar=\"1\"\n")
    assert dag.nodes["a"].done
    assert dag.nodes["a"].vars == (("My.Foo", '"bob"'), ("My.Bar", "1"))


@pytest.mark.parametrize(
    "text, lineno, fragment",
    [
        ("JOB a s\nFROB a\n", 2, "not a supported DAG command"),
        ("JOB a s\nVARS b x=\"1\"\n", 2, "no earlier JOB line"),
        ("PARENT a CHILD b\n", 1, "no earlier JOB line"),
        ("JOB a.b s\n", 1, "illegal character"),
        ("JOB a+b s\n", 1, "illegal character"),
        ("JOB parent s\n", 1, "reserved word"),
        ("JOB All_Nodes s\n", 1, "reserved word"),
        ("JOB a s\nJOB a s\n", 2, "duplicate node name"),
        ("JOB a\n", 1, "no submit description"),
        ("JOB a s BOGUS\n", 1, "unexpected token"),
        ("JOB a s\nRETRY a x\n", 2, "integer"),
        ("JOB a s\nRETRY a -1\n", 2, "out of range"),
        ("JOB a s\nRETRY a 1 UNLESS 2\n", 2, "unexpected token"),
        ("JOB a s\nVARS a x=\"1\n", 2, "no ending quote"),
        ("JOB a s\nVARS a x\n", 2, "non key=value"),
        ("JOB a s\nVARS a queue_x=\"1\"\n", 2, "queue"),
        ("JOB a s\nVARS a x=\"\"\n", 2, "missing value"),
        ("JOB a s\nVARS a\n", 2, "no key=value pairs"),
        ("JOB a s\nABORT-DAG-ON a 1 RETURN 300\n", 2, "out of range"),
        ("JOB a s\nSCRIPT PRE a\n", 2, "no script"),
        ("JOB a s\nSCRIPT a /bin/x\n", 2, "script type"),
        ("JOB a s\nPRIORITY a 1 2\n", 2, "unexpected token"),
        ("JOB a s\nPARENT a CHILD a\n", 2, "own parent"),
        ("SUBDAG EXTERNAL x y.dag\n", 1, "not a supported"),
    ],
)
def test_errors_name_file_and_line(text, lineno, fragment):
    with pytest.raises(DagSyntaxError) as e:
        parse_dag(text, "bad.dag")
    msg = str(e.value)
    assert msg.startswith(f"bad.dag:{lineno}: ")
    assert fragment in msg


def test_no_line_continuation():
    # The 25.x parser (dag_parser.cpp) reads one physical line per command.
    with pytest.raises(DagSyntaxError) as e:
        parse_dag("JOB a s \\\nDIR x\n", "c.dag")
    assert str(e.value).startswith("c.dag:1:")


NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def test_render_rescue_exact_format():
    text = render_rescue("/x/w.dag", ["a", "b"], ["c"], 4, NOW)
    assert text == (
        "# Rescue DAG file, created after running\n"
        "#   the /x/w.dag DAG file\n"
        "# Created 3/4/2025 05:06:07 UTC\n"
        "# Rescue DAG version: 2.0.1 (partial)\n"
        "#\n"
        "# Total number of Nodes: 4\n"
        "# Nodes premarked DONE: 2\n"
        "# Nodes that failed: 1\n"
        "#   c,<ENDLIST>\n"
        "\n"
        "DONE a\n"
        "DONE b\n"
    )


def test_render_rescue_no_failures_and_local_time():
    from datetime import timedelta

    tz = timezone(timedelta(hours=2))
    text = render_rescue("w.dag", [], [], 0, datetime(2025, 1, 1, 1, 0, 0, tzinfo=tz))
    assert "# Created 12/31/2024 23:00:00 UTC\n" in text
    assert "#   <ENDLIST>\n" in text


def test_render_rescue_with_dag_writes_retry_lines_in_file_order():
    dag = parse_dag("JOB a s\nJOB b s\nJOB c s\nRETRY b 2 UNLESS-EXIT 3\nRETRY c 1\n")
    text = render_rescue("w.dag", ["c", "a"], ["b"], 3, NOW, dag=dag)
    assert text.split("<ENDLIST>\n\n")[1] == "DONE a\nRETRY b 2 UNLESS-EXIT 3\nDONE c\nRETRY c 1\n"


def test_rescue_round_trip():
    original = "JOB a s\nJOB b s\nJOB c s\nJOB d s\nPARENT a CHILD b c\nPARENT b c CHILD d\nRETRY d 2\n"
    dag = parse_dag(original, "w.dag")
    text = render_rescue("w.dag", ["a", "b"], ["c"], 4, NOW, dag=dag)
    rescued = apply_rescue(dag, text, "w.dag.rescue001")
    assert {n for n, v in rescued.nodes.items() if v.done} == {"a", "b"}
    assert rescued.nodes["d"].retry == 2
    assert rescued.parents == dag.parents
    assert not any(v.done for v in dag.nodes.values())  # original untouched


def test_apply_rescue_retry_overrides_and_errors():
    dag = parse_dag("JOB a s\nRETRY a 5\n")
    assert apply_rescue(dag, "RETRY a 1 UNLESS-EXIT 9\n").nodes["a"] == DagNode(
        name="a", submit="s", retry=1, retry_unless_exit=9
    )
    with pytest.raises(DagSyntaxError) as e:
        apply_rescue(dag, "# c\nDONE zz\n", "w.dag.rescue002")
    assert str(e.value).startswith("w.dag.rescue002:2:")
    with pytest.raises(DagSyntaxError):
        apply_rescue(dag, "JOB b s\n", "r")


def test_rescue_paths(tmp_path):
    dag = str(tmp_path / "w.dag")
    assert rescue_files(dag) == []
    assert newest_rescue(dag) is None
    assert next_rescue_path(dag) == dag + ".rescue001"
    for n in (2, 10, 1):
        (tmp_path / f"w.dag.rescue{n:03d}").write_text("")
    (tmp_path / "w.dag.rescue003.old").write_text("")
    (tmp_path / "other.dag.rescue004").write_text("")
    assert rescue_files(dag) == [dag + ".rescue001", dag + ".rescue002", dag + ".rescue010"]
    assert newest_rescue(dag) == dag + ".rescue010"
    assert next_rescue_path(dag) == dag + ".rescue011"
    assert next_rescue_path(dag, max_rescue=10) == dag + ".rescue010"
