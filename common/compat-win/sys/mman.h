/* sys/mman.h for Windows: anonymous private mappings
 * (common/posix_win.h). */
#include "common/posix_win.h"
