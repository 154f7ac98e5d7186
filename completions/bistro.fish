# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_bistro_global_optspecs
    string join \n state-dir= config= color= h/help V/version
end

function __fish_bistro_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_bistro_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_bistro_using_subcommand
    set -l cmd (__fish_bistro_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c bistro -n "__fish_bistro_needs_command" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_needs_command" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_needs_command" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_needs_command" -s V -l version -d 'Print version'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "init" -d 'Create the state directory; copy --config into it, or write the demo config'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "tick" -d 'One scheduling iteration: reload config and nodes, record finished tasks, start what fits'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "daemon" -d 'Scheduling iterations in one long-running process (SIGTERM/SIGINT stop it; tasks keep running)'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "run-task" -d 'Run one task now in the foreground and record its status; exit 0 only if it is done'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "status" -d 'Per-job task counts, and with --tasks one row per task'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "logs" -d 'Task output and lifecycle events from the task-log database'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "check" -d 'Validate the config; print every problem; exit 2 if there is any'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "plan" -d 'What applying the config file would do: settings and jobs changed key by key, node changes, tasks that would start, running tasks that would become orphans; exit 0 no change, 1 changes, 2 problems'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "why" -d 'Why a task is or is not running: its status, backoff, a disabled job or node, a filter, an unfinished dependency, or the exact resource and who holds it'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "kill" -d 'Kill a running task (its job\'s kill_subprocess, on its whole process group)'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "forgive" -d 'Let failed and backed-off tasks of a job run again (durably)'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "serve-http" -d 'Serve the REST API, a status page and metrics over the state dir (loopback only by default)'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "worker" -d 'A remote worker: runs the tasks a `bistro daemon` without --worker-command sends it'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "manpage" -d 'Print the man page (roff) of bistro or of one subcommand'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "supervise" -d 'Supervise the task runs of a tick or daemon (started by them; not for direct use)'
complete -c bistro -n "__fish_bistro_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bistro -n "__fish_bistro_using_subcommand init" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand init" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand init" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand init" -l force -d 'Overwrite an existing STATE/config.json'
complete -c bistro -n "__fish_bistro_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l worker-command -d 'Command run for each task as `CMD NODE STATUS_FILE JSON` (a job\'s "command" overrides it); remembered for later ticks' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l instance-node-name -d 'Name of the root instance node [default: remembered, else the host name]' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l wait-lock -d 'Wait up to SECS for the state lock instead of exiting 75 at once' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l log-retention -d 'Task log lines older than SECS are deleted (default 30 days)' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l log-prune-frequency -d 'Seconds between log prunes; 0 disables pruning' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l nodes-update-ms -d 'Reuse the nodes fetched by an earlier iteration for this long (node scripts do not rerun); a change of node sources, levels or instance name refetches at once' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l test-task-duration -d 'With --benchmark-run: the mean run length; runs take 0..2x MS, uniformly' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l test-failure-rate -d 'With --benchmark-run: the probability (0 to 1) that a run fails with `error_backoff` "testing"' -r
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l runner -d 'Where tasks run: `local` (on this machine), `remote` (bistro\'s remote workers; daemon only) or `slurm` (submitted to the Slurm cluster SLURM_CONF names); remembered for later ticks [default: remembered, else as before: local for a tick, and for a daemon local with --worker-command or --local, else remote]' -r -f -a "local\t'On this machine, under supervisors'
remote\t'On bistro\'s remote workers (a daemon only)'
slurm\t'On a Slurm cluster'"
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l dry-run -d 'Start and write nothing; print what would start and why each other task waits'
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l json -d 'Print the report as one JSON object'
complete -c bistro -n "__fish_bistro_using_subcommand tick" -s q -l quiet -d 'Print nothing on success'
complete -c bistro -n "__fish_bistro_using_subcommand tick" -s v -l verbose -d 'Also print each task started'
complete -c bistro -n "__fish_bistro_using_subcommand tick" -l benchmark-run -d 'Start no processes: each task ends after a random time and reports `done` (or `error_backoff` "testing"), to measure the scheduler itself. Statuses are recorded as usual; the command is never run'
complete -c bistro -n "__fish_bistro_using_subcommand tick" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l worker-command -d 'Command run for each task as `CMD NODE STATUS_FILE JSON` (a job\'s "command" overrides it); remembered for later ticks' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l instance-node-name -d 'Name of the root instance node [default: remembered, else the host name]' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l wait-lock -d 'Wait up to SECS for the state lock instead of exiting 75 at once' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l config-update-ms -d 'Re-read the config file at most this often' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l log-retention -d 'Task log lines older than SECS are deleted (default 30 days)' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l log-prune-frequency -d 'Seconds between log prunes; 0 disables pruning' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l nodes-update-ms -d 'Reuse the nodes fetched by an earlier iteration for this long (node scripts do not rerun); a change of node sources, levels or instance name refetches at once' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l test-task-duration -d 'With --benchmark-run: the mean run length; runs take 0..2x MS, uniformly' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l test-failure-rate -d 'With --benchmark-run: the probability (0 to 1) that a run fails with `error_backoff` "testing"' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l runner -d 'Where tasks run: `local` (on this machine), `remote` (bistro\'s remote workers; daemon only) or `slurm` (submitted to the Slurm cluster SLURM_CONF names); remembered for later ticks [default: remembered, else as before: local for a tick, and for a daemon local with --worker-command or --local, else remote]' -r -f -a "local\t'On this machine, under supervisors'
remote\t'On bistro\'s remote workers (a daemon only)'
slurm\t'On a Slurm cluster'"
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l http -d 'Also serve the REST API, status page and metrics on ADDR (as `serve-http`)' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l allow-host -d 'Another name clients may reach the --http server by (as `serve-http --allow-host`): NAME or NAME:PORT. Repeatable' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l heartbeat-grace-period -d 'Seconds added to each worker\'s own heartbeat period before it is unhealthy' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l healthcheck-period -d 'Seconds between healthchecks of each worker' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l healthcheck-grace-period -d 'Seconds a healthcheck may be late before its worker is unhealthy' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l lose-unhealthy-worker-after -d 'Seconds a worker may stay unhealthy before it is lost (its tasks back off and run again elsewhere once it has surely killed them)' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l worker-check-interval -d 'Seconds between sweeps over the workers' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l unsure-if-running-check-initial-period -d 'Seconds before asking a worker about a task whose start may not have arrived' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l caution-startup-wait-for-workers -d 'Seconds to wait for workers after a start before starting tasks (-1: the safe wait computed from the timeouts, 696 s by default). Shorter risks running a task twice' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l caution-worker-suicide-backoff-safety-margin-sec -d 'Seconds a lost worker\'s tasks wait, beyond its kill wait, before running again' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l caution-worker-suicide-task-kill-wait-ms -d 'Milliseconds a dying worker\'s tasks have between SIGTERM and SIGKILL' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l worker-call-timeout-ms -d 'Milliseconds one call to a worker may take' -r
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l exit-when-done -d 'Exit 0 once nothing runs and nothing can start (tasks in backoff still can)'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l clean-statuses -d 'Forget every stored status at start, so every task runs again'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l benchmark-run -d 'Start no processes: each task ends after a random time and reports `done` (or `error_backoff` "testing"), to measure the scheduler itself. Statuses are recorded as usual; the command is never run'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l allow-remote -d 'Allow a non-loopback --http address (changes still need the token)'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l local -d 'Run tasks on this machine although no --worker-command is given (every job has its own "command"). Without either, tasks go to remote workers. The same as `--runner local`, and remembered as it is'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -l allow-bump-unhealthy-worker -d 'Let a new worker replace a shard\'s worker that is not healthy at once'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -s v -l verbose -d 'More log on stderr: -v each start and finish (shown without -v when stderr is a terminal), -vv every iteration (or set BISTRO_LOG, e.g. BISTRO_LOG=debug)'
complete -c bistro -n "__fish_bistro_using_subcommand daemon" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -l worker-command -d 'Command run for each task as `CMD NODE STATUS_FILE JSON` (a job\'s "command" overrides it); remembered for later ticks' -r
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -l instance-node-name -d 'Name of the root instance node [default: remembered, else the host name]' -r
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -l wait-lock -d 'Wait up to SECS for the state lock instead of exiting 75 at once' -r
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -s q -l quiet -d 'Do not copy the task\'s output to the terminal (it is still logged)'
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -l ignore-resources -d 'Run even if the resources the task needs are taken by running tasks'
complete -c bistro -n "__fish_bistro_using_subcommand run-task" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand status" -l job -d 'Only this job (repeatable)' -r
complete -c bistro -n "__fish_bistro_using_subcommand status" -l status -d 'Only tasks with this status (repeatable): running, done, incomplete, error_backoff, failed, not_started' -r
complete -c bistro -n "__fish_bistro_using_subcommand status" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand status" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand status" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand status" -l json -d 'Print the JSON document (schema_version 1)'
complete -c bistro -n "__fish_bistro_using_subcommand status" -l tasks -d 'Add one row per task'
complete -c bistro -n "__fish_bistro_using_subcommand status" -l check -d 'Print nothing; exit 0 when every task of every runnable job is done (tasks that filters or disabled nodes exclude aside), 3 while work remains, 4 when only permanent failures remain (for scripts and CI)'
complete -c bistro -n "__fish_bistro_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand logs" -l job -d 'Only this job (repeatable)' -r
complete -c bistro -n "__fish_bistro_using_subcommand logs" -l node -d 'Only this node (repeatable)' -r
complete -c bistro -n "__fish_bistro_using_subcommand logs" -l stream -d 'Only this stream (repeatable): stdout, stderr or statuses (lifecycle events)' -r -f -a "stdout\t''
stderr\t''
statuses\t''"
complete -c bistro -n "__fish_bistro_using_subcommand logs" -s n -l limit -d 'Only the last N lines' -r
complete -c bistro -n "__fish_bistro_using_subcommand logs" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand logs" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand logs" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand logs" -s f -l follow -d 'Keep printing new lines as they arrive (Ctrl-C to stop)'
complete -c bistro -n "__fish_bistro_using_subcommand logs" -l json -d 'Print JSON Lines: {id, time, time_rfc3339, job, node, stream, line}'
complete -c bistro -n "__fish_bistro_using_subcommand logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand check" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand check" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand check" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand check" -l nodes -d 'Also run the node sources (scripts included) to check them'
complete -c bistro -n "__fish_bistro_using_subcommand check" -l json -d 'Print {"ok", "config", "problems": [{"where", "message"}], "warnings": [...]}'
complete -c bistro -n "__fish_bistro_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand plan" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand plan" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand plan" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand plan" -l json -d 'Print one JSON object: schema_version (1), config, in_force, unusable, problems [{where, message}], settings [{key, before, after}], jobs {added, removed, changed [{job, keys}]}, nodes {compared, added, removed, error}, pass, would_start [{job, node}], orphans [{job, node, reason, kill_at}]'
complete -c bistro -n "__fish_bistro_using_subcommand plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand why" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand why" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand why" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand why" -l json -d 'Print one JSON object: job, node, state, reason, message, the reason\'s details (resource, used, limit, holders, backoff_until, ...) and the stored status'
complete -c bistro -n "__fish_bistro_using_subcommand why" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand kill" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand kill" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand kill" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand kill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand forgive" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand forgive" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand forgive" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand forgive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand serve-http" -l listen -d 'Address to listen on (IP:PORT or localhost:PORT; port 0 picks a free one)' -r
complete -c bistro -n "__fish_bistro_using_subcommand serve-http" -l allow-host -d 'Another name clients may reach the server by, in `Host` and `Origin` (e.g. the machine\'s DNS name with --allow-remote, or a proxy\'s): NAME (with or without the listening port) or NAME:PORT. Repeatable' -r
complete -c bistro -n "__fish_bistro_using_subcommand serve-http" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand serve-http" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand serve-http" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand serve-http" -l allow-remote -d 'Allow a non-loopback --listen address: anyone who can reach it can read the state (changes still need the token)'
complete -c bistro -n "__fish_bistro_using_subcommand serve-http" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l scheduler -d 'The scheduler: the address of its `daemon --http`, as http://HOST:PORT or HOST:PORT' -r
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l token-file -d 'The scheduler\'s worker secret (its STATE/worker.token, copied here)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l worker-command -d 'Command run for each task whose job has no "command", as `CMD NODE STATUS_FILE JSON`' -r
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l shard-id -d 'This worker\'s shard id: one worker per shard is associated [default: the host name]' -r
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l listen -d 'Where to listen for the scheduler\'s calls (IP:PORT; port 0 picks a free one)' -r
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l advertise -d 'The HOST:PORT the scheduler should call [default: the address listened on]' -r
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l heartbeat-period-sec -d 'Seconds between heartbeats (also sent to the scheduler, which allows this plus its grace period)' -r
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l call-timeout-ms -d 'How long one call to the scheduler may take, in milliseconds' -r
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand worker" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand worker" -s v -l verbose -d 'More log on stderr: -v each association and death, -vv every call (or set BISTRO_LOG, e.g. BISTRO_LOG=debug)'
complete -c bistro -n "__fish_bistro_using_subcommand worker" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand completions" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand completions" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand completions" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand manpage" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand manpage" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand manpage" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand manpage" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand supervise" -l socket-fd -d 'The descriptor of the socket the runner hands runs over, inherited from it' -r
complete -c bistro -n "__fish_bistro_using_subcommand supervise" -l state-dir -d 'The state directory (created by `init`, `tick`, `daemon` and `run-task`)' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand supervise" -l config -d 'The config file [default: the one `tick` last used, else STATE/config.json]' -r -F
complete -c bistro -n "__fish_bistro_using_subcommand supervise" -l color -d 'When to use colour (nothing is coloured when stdout is not a terminal)' -r -f -a "auto\t'Colour on a terminal unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c bistro -n "__fish_bistro_using_subcommand supervise" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "init" -d 'Create the state directory; copy --config into it, or write the demo config'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "tick" -d 'One scheduling iteration: reload config and nodes, record finished tasks, start what fits'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "daemon" -d 'Scheduling iterations in one long-running process (SIGTERM/SIGINT stop it; tasks keep running)'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "run-task" -d 'Run one task now in the foreground and record its status; exit 0 only if it is done'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "status" -d 'Per-job task counts, and with --tasks one row per task'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "logs" -d 'Task output and lifecycle events from the task-log database'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "check" -d 'Validate the config; print every problem; exit 2 if there is any'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "plan" -d 'What applying the config file would do: settings and jobs changed key by key, node changes, tasks that would start, running tasks that would become orphans; exit 0 no change, 1 changes, 2 problems'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "why" -d 'Why a task is or is not running: its status, backoff, a disabled job or node, a filter, an unfinished dependency, or the exact resource and who holds it'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "kill" -d 'Kill a running task (its job\'s kill_subprocess, on its whole process group)'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "forgive" -d 'Let failed and backed-off tasks of a job run again (durably)'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "serve-http" -d 'Serve the REST API, a status page and metrics over the state dir (loopback only by default)'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "worker" -d 'A remote worker: runs the tasks a `bistro daemon` without --worker-command sends it'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "completions" -d 'Print a shell completion script'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "manpage" -d 'Print the man page (roff) of bistro or of one subcommand'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "supervise" -d 'Supervise the task runs of a tick or daemon (started by them; not for direct use)'
complete -c bistro -n "__fish_bistro_using_subcommand help; and not __fish_seen_subcommand_from init tick daemon run-task status logs check plan why kill forgive serve-http worker completions manpage supervise help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
