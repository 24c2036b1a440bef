/* version.h: the version of traced's daemon, CLI and library. */
#ifndef TRACED_VERSION_H
#define TRACED_VERSION_H

#define TRACED_VERSION "0.1.0"

#endif
