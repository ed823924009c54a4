"""Run the agent's shell commands in a bubblewrap sandbox, or in a plain subprocess when the user opts out.

    sandbox = make_sandbox("bwrap", workspace, timeout_s=30, memory_mb=1024)   # factory.py
    result = sandbox.run("pytest -q")        # CommandResult(exit_code=0, output="...", ...)

- ``base``: the ``Sandbox`` protocol, ``CommandResult``, the workspace and the cleared environment.
- ``factory``: ``make_sandbox`` by name (``bwrap`` or ``none``, as params.yaml says).
- ``bwrap``: ``BwrapSandbox`` (what it contains and how) and ``require_bwrap``, which names the install command.
- ``plain``: ``NoSandbox``, the explicit opt-out: the same limits, no isolation.
- ``limits``: memory, file size and process limits, output cut to head and tail, the disk quota.
- ``process``: one command under the wall clock, its process group killed on timeout.
- ``cgroup``: the pids cgroup that caps the task count when running as root.
"""
