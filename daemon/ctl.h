/* ctl.h: the operator's subcommands, `traced status` and `traced stop`. */
#ifndef TRACED_CTL_H
#define TRACED_CTL_H

/* Each takes the subcommand's arguments (argv[0] is the subcommand) and
 * returns the exit status: 0 done, 1 no daemon reachable (or it failed to
 * answer), 2 usage, and for stop 3 refused (not the daemon's user nor
 * root). */
int tr_cmd_status(int argc, char **argv);
int tr_cmd_stop(int argc, char **argv);

#endif
