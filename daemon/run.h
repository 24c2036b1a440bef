/* run.h: the `traced run` subcommand. */
#ifndef TRACED_RUN_H
#define TRACED_RUN_H

/* argv[0] is "run"; returns the process exit status. */
int tr_cmd_run(int argc, char **argv);

#endif
