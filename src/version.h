/* version.h: the package's version, the one place it is written (setup.py
 * reads it here; the module exposes it as __version__). */
#ifndef PU_VERSION_H
#define PU_VERSION_H

#define PU_VERSION "0.1.0"

#endif
