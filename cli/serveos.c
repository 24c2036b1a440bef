/* serveos.c: the part of `serve`'s operating-system side both systems
 * share (serveos.h). */
#include "serveos.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void tr_serveos_waited(bool got, char status, const char *log_path,
                                 const char *socket_path) {
  if (got && status == '0') exit(0);
  if (got && status == 'A')
    fprintf(stderr, "traced serve: a daemon is already running on %s\n",
            socket_path);
  else
    fprintf(stderr, "traced serve: the daemon failed to start; see %s\n",
            log_path);
  exit(1);
}
