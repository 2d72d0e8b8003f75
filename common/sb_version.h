#ifndef SB_VERSION_H
#define SB_VERSION_H

/* Bumped by hand at release time; `send-bridge version` prints it. */
#define SB_VERSION "0.1.0"

#endif
