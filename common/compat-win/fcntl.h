/* fcntl.h for Windows: mingw-w64's, plus O_CLOEXEC and F_GETFL
 * (common/posix_win.h). */
#include_next <fcntl.h>
#include "common/posix_win.h"
