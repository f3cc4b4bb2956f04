#ifndef ERYX_CLI_IMAGE_CMD_H
#define ERYX_CLI_IMAGE_CMD_H

#include "eryx.h"

/* `eryx image ...` (argv after "image"); returns the exit status. */
int eryx_cli_image(int argc, char **argv);

/* The runtime a run uses: loaded from image (--image) if given, else the
 * default image cached on disk (made on first use), else one that boots
 * CPython. The message is in eryx_errmsg(NULL). */
int eryx_cli_runtime(const char *image, eryx_runtime **rt);

#endif
