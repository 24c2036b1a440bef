/* cli.h: traced's subcommands, one function each, called by main.c's
 * command table.  Each takes the subcommand's arguments (argv[0] is the
 * subcommand's name) and returns the process exit status. */
#ifndef TRACED_CLI_H
#define TRACED_CLI_H

/* `traced run`: the command's own exit status, or traced's when it could
 * not run it. */
int tr_cmd_run(int argc, char **argv);

/* `traced serve`: 0 once the daemon has stopped, 1 when it cannot start,
 * 2 for bad usage. */
int tr_cmd_serve(int argc, char **argv);

/* `traced status` and `traced stop`: 0 done, 1 no daemon reachable (or it
 * failed to answer), 2 usage, and for stop 3 refused (not the daemon's user
 * nor root). */
int tr_cmd_status(int argc, char **argv);
int tr_cmd_stop(int argc, char **argv);

/* `traced report`: 0, 1 for a file that cannot be read or is not a trace,
 * 2 for bad usage. */
int tr_cmd_report(int argc, char **argv);

#endif
