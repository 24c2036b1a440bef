/* pwd.h for Windows: getpwuid for this process's own user
 * (common/posix_win.h). */
#include "common/posix_win.h"
