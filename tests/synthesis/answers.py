"""Teacher and critic answers shared by the synthesis tests: valid tasks and the function calls that carry them."""

GOOD = dict(
    query="intervals.py has a function merge(intervals) that is still a stub. Make it return the sorted list of "
          "merged [start, end] pairs, joining intervals that overlap or touch, and leave the input list unchanged.",
    category="algorithm", domain="software",
    workspace_files={"intervals.py": "def merge(intervals):\n    raise NotImplementedError\n"},
    checks=["python3 -c 'from intervals import merge; assert merge([[1,3],[2,6],[8,10]]) == [[1,6],[8,10]]'",
            "python3 -c 'from intervals import merge; assert merge([[1,2],[2,3]]) == [[1,3]]'"])
REWRITTEN = dict(GOOD, query="Please implement merge(intervals) in intervals.py: it gets a list of [start, end] "
                             "pairs in any order and must return them sorted by start, with overlapping or touching "
                             "pairs combined into one, without modifying the argument.")
ANALYSIS = dict(
    query="Compare the two CSV files runs_a.csv and runs_b.csv (columns step,loss) and write verdict.txt containing "
          "only the name of the file whose final loss is lower, followed by a newline.",
    category="research", domain="research",
    workspace_files={"runs_a.csv": "step,loss\n1,2.0\n2,1.5\n", "runs_b.csv": "step,loss\n1,2.1\n2,1.2\n"},
    checks=["test \"$(cat verdict.txt)\" = runs_b.csv"])


def task(**args):
    return {"content": "", "tool_calls": [{"type": "function", "function": {"name": "submit_task", "arguments": args}}]}


def scores(realism=4, specificity=4, verifiability=4, difficulty=3, notes="fine"):
    args = dict(realism=realism, specificity=specificity, verifiability=verifiability, difficulty=difficulty,
                notes=notes)
    call = {"type": "function", "function": {"name": "submit_scores", "arguments": args}}
    return {"content": "", "tool_calls": [call]}
