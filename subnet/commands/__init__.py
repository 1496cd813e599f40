"""The `subnet` command line: one module per command or command group, nothing else.

`main` wires the groups; `boundary` is the one error boundary every command runs behind (one
line, `error:` prefix, documented exit codes). The work itself lives in the areas the commands
call: `subnet.validator`, `subnet.miner`, `subnet.eval`, `subnet.hub`, `subnet.chain`.
"""
