/*
 * cmd_fsck.c - `kmsfs fsck` (being written this session; replaced before the issue closes).
 */
#include "cli.h"

int cmd_fsck(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_error("fsck: not built yet");
}
